#!/bin/sh
# Stand-in `claude` for the end-to-end benchmark (benches/e2e.rs installs it as `claude` first
# on PATH). Speaks Claude Code's protocol: `claude auth status` answers logged in; otherwise the
# prompt arrives on stdin, its `story_key: `K`` / `story_file: `P`` lines say which story to
# close. It sleeps the story's duration, ticks the unchecked boxes, writes out/K.txt, commits,
# and prints the worker result (the counts it saw and made) inside Claude's JSON envelope.
#
# @DURATIONS@ is replaced by a file of `key seconds` lines (`*` is the default duration),
# @STARTS@ by the file each run appends its start time to.
if [ "$1" = auth ]; then echo '{"loggedIn": true}'; exit 0; fi
# When this run started (epoch seconds), for the benchmark's time to first agent.
date +%s.%N >> "@STARTS@"
prompt=$(cat)
key=$(printf '%s\n' "$prompt" | sed -n 's/^.*story_key[^:]*: *[`*]*\([^`* ]*\).*$/\1/p' | head -n 1)
file=$(printf '%s\n' "$prompt" | sed -n 's/^.*story_file[^:]*: *[`*]*\([^`* ]*\).*$/\1/p' | head -n 1)
durations="@DURATIONS@"
secs=$(awk -v k="$key" '$1 == k { print $2; exit }' "$durations")
[ -n "$secs" ] || secs=$(awk '$1 == "*" { print $2; exit }' "$durations")
case "$secs" in ""|0|0.0) ;; *) sleep "$secs" ;; esac
total=$(grep -c '^- \[' "$file")
already=$(grep -c '^- \[x\]' "$file")
sed -i 's/^- \[ \] /- [x] /' "$file"
mkdir -p out && echo "$key" > "out/$key.txt"
git add out "$file" && git commit -qm "teleos: close $key" || exit 1
printf '{"type":"result","subtype":"success","is_error":false,"total_cost_usd":0,"result":"{\\"story_key\\":\\"%s\\",\\"status\\":\\"completed\\",\\"tasks_total\\":%s,\\"tasks_completed_by_closer\\":%s,\\"tasks_already_done\\":%s}"}\n' "$key" "$total" "$((total - already))" "$already"
