#!/usr/bin/env bash
# Check the agent presets against the real CLIs from the npm registry (not part of CI).
#
# Installs @anthropic-ai/claude-code, @openai/codex, @google/gemini-cli and opencode-ai into a
# scratch prefix, asks git-teleos for the exact command line each preset builds
# (`git teleos close --dry-run` prints it), runs it with the prompt on stdin in a scratch
# repository with an empty environment and no account, and checks that each CLI got past its
# argument parsing: the run must stop at authentication or the network, never at a usage error.
# It never logs in and never creates credentials.
#
# Usage: scripts/check-real-clis.sh [PREFIX]   (TIMEOUT=seconds per CLI, default 30;
#        GIT_TELEOS=path of the binary, default target/debug/git-teleos)
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
prefix=${1:-$(mktemp -d /tmp/teleos-clis.XXXXXX)}
timeout_secs=${TIMEOUT:-30}
teleos=${GIT_TELEOS:-$here/target/debug/git-teleos}
[ -x "$teleos" ] || (cd "$here" && cargo build --quiet)

if [ ! -x "$prefix/node_modules/.bin/opencode" ]; then
  echo "installing the CLIs into $prefix" >&2
  npm install --silent --no-audit --no-fund --prefix "$prefix" \
    @anthropic-ai/claude-code @openai/codex @google/gemini-cli opencode-ai >&2
fi
bin="$prefix/node_modules/.bin"

scratch=$(mktemp -d /tmp/teleos-check.XXXXXX)
trap 'rm -rf "$scratch"' EXIT
repo="$scratch/repo"
home="$scratch/home"
mkdir -p "$repo/docs/sprint-artifacts" "$home"
{ printf '# Say hi\n\nStatus: in-progress\n\n'; for i in 1 2 3 4 5 6 7 8 9; do echo "- [x] Done $i"; done; echo '- [ ] Say hi'; } \
  > "$repo/docs/sprint-artifacts/1-1-hi.md"
git -C "$repo" init -q -b main
git -C "$repo" -c user.name=check -c user.email=check@example.com add -A
git -C "$repo" -c user.name=check -c user.email=check@example.com commit -qm stories

version() {
  node -p "require('$prefix/node_modules/$1/package.json').version"
}

failed=0
check() {
  local preset=$1 package=$2
  local line
  line=$(cd "$repo" && env -i PATH="$bin:$(dirname "$(command -v node)"):/usr/bin:/bin" HOME="$home" \
    "$teleos" close --sequential --all --dry-run --agent "$preset" 2>&1 |
    sed -n 's/^Agent command: //p')
  if [ -z "$line" ] || [[ $line == "not available"* ]]; then
    echo "FAIL $preset: no agent command from git-teleos ($line)"
    failed=1
    return
  fi
  # The line is shell-quoted by git-teleos (leading VAR=value words are the preset's env).
  local -a words envs=()
  eval "words=($line)"
  while [[ ${words[0]} == *=* && ${words[0]} != /* ]]; do
    envs+=("${words[0]}")
    words=("${words[@]:1}")
  done
  # git-teleos creates the log folder (where codex's -o file goes) before it starts an agent.
  local i
  for ((i = 0; i + 1 < ${#words[@]}; i++)); do
    [ "${words[i]}" = -o ] && [[ ${words[i + 1]} == /* ]] && mkdir -p "$(dirname "${words[i + 1]}")"
  done
  local out="$scratch/$preset.out" err="$scratch/$preset.err" rc=0
  (cd "$repo" && echo "Say hi" | env -i PATH="$bin:$(dirname "$(command -v node)"):/usr/bin:/bin" HOME="$home" TERM=dumb \
    "${envs[@]}" timeout "$timeout_secs" "${words[@]}" >"$out" 2>"$err") || rc=$?
  local text
  text=$(cat "$out" "$err")
  local usage='unknown option|unexpected argument|Unknown argument|Usage:|You must provide|invalid value'
  local stopped='Not logged in|/login|Auth method|API key|Reconnecting|waiting for network|Connection|Unable to connect|fetch|network|error sending request'
  local verdict
  if grep -Eqi "$usage" <<<"$text"; then
    verdict="FAIL (usage error)"
    failed=1
  elif [ "$rc" -eq 124 ] || grep -Eqi "$stopped" <<<"$text"; then
    verdict="ok (stopped at authentication or network)"
  else
    verdict="FAIL (unexpected end)"
    failed=1
  fi
  printf '%-8s %-26s %-10s exit %-3s %s\n' "$preset" "$package" "$(version "$package")" "$rc" "$verdict"
  echo "         argv: ${envs[*]} ${words[*]}"
  head -c 300 "$out" "$err" | sed 's/^/         | /'
  echo
}

check claude @anthropic-ai/claude-code
check codex @openai/codex
check gemini @google/gemini-cli
check opencode opencode-ai
exit $failed
