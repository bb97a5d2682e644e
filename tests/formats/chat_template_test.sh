#!/usr/bin/env bash
# Built-in chat templates vs jinja2 rendering each model family's shipped template, byte for byte
# (see chat_template_oracle.py). Uses Debian's python3-jinja2, visible to /usr/bin/python3 only.
set -euo pipefail
: "${SEEKSERVE_BINARY:?}" "${SEEKSERVE_SOURCE_DIR:?}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
/usr/bin/python3 "$SEEKSERVE_SOURCE_DIR/tests/formats/chat_template_oracle.py" \
  "$SEEKSERVE_BINARY" "$SEEKSERVE_SOURCE_DIR" "$work" 300

# Single mode: the same prompt as batch mode, detection from a template file, exit codes.
bin=$SEEKSERVE_BINARY
fixtures=$SEEKSERVE_SOURCE_DIR/tests/data/chat_templates
printf '%s' '{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "<think>r</think>yo"}, {"role": "user", "content": "é"}]}' >"$work/chat.json"
expected=$'<｜begin▁of▁sentence｜><｜User｜>hi<｜Assistant｜>yo<｜end▁of▁sentence｜><｜User｜>é<｜Assistant｜><think>\n'
got=$("$bin" chat-template --template-file "$fixtures/deepseek_r1.jinja" --messages-json "$work/chat.json" --add-generation-prompt; printf x)
[[ "${got%x}" == "$expected" ]] || { echo "single mode: got ${got@Q}"; exit 1; }
expect_exit() {
  local want=$1; shift
  set +e; "$bin" chat-template "$@" >/dev/null 2>"$work/err"; local rc=$?; set -e
  [[ $rc == "$want" ]] || { echo "chat-template $*: exit $rc, want $want: $(cat "$work/err")"; exit 1; }
}
expect_exit 2 --template nope --messages-json "$work/chat.json"
printf '%s' '[{"role": "robot", "content": "x"}]' >"$work/bad.json"
expect_exit 2 --template chatml --messages-json "$work/bad.json"
grep -q 'unknown role "robot"' "$work/err"
printf '%s' '{{ messages }}' >"$work/unknown.jinja"
expect_exit 2 --template-file "$work/unknown.jinja" --messages-json "$work/chat.json"
echo "OK: chat-template single mode and exit codes"
