#!/usr/bin/env bash
# make run: until the server lands, show what seekserve does today on the demo model.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-build/seekserve}
"$bin" version
