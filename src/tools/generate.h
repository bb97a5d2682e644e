#pragma once
// generate, logits and perplexity: the engine from the command line, one sequence at a time.

#include "tools/command.h"

namespace seekserve {

// The commands are declared in tools/command.h.

}  // namespace seekserve
