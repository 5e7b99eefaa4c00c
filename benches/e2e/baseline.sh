#!/usr/bin/env bash
# The baseline of the end-to-end benchmark: the source workflow's parallel procedure (seed §3.4,
# steps 1-5) done with the git CLI, as its lead agent would run it.
#
#   baseline.sh REPO SESSION_ID WORKTREES STORY_LIST
#
# STORY_LIST holds `key<TAB>story_file` lines in selection order. The agent is whatever `claude`
# is first on PATH (the benchmark's stand-in), given the same prompt lines git-teleos sends.
# Not done here, as in the benchmark's git-teleos runs: no install step, no manifest (neither
# costs anything measurable next to the git work).
set -uo pipefail
repo=$1 sid=$2 n=$3 list=$4
cd "$repo" || exit 2
integ="integration-$sid"
state=$(mktemp -d)
trap 'rm -rf "$state"' EXIT
lock="$state/merge.lock"

# Step 1: integration branch and persistent worktrees, one after another.
git branch -f "$integ" HEAD
mkdir -p .claude/worktrees
for i in $(seq 1 "$n"); do
  git worktree add -q -b "worktree/teleos-$sid-$i" ".claude/worktrees/teleos-$sid-$i" HEAD
done

# Step 2: fixed assignment, each story to the worktree with the fewest stories (ties: the
# first), which without dependencies is round-robin by count.
declare -a count
for i in $(seq 1 "$n"); do count[i]=0; : > "$state/queue-$i"; done
while IFS= read -r line; do
  best=1
  for i in $(seq 2 "$n"); do
    if (( count[i] < count[best] )); then best=$i; fi
  done
  printf '%s\n' "$line" >> "$state/queue-$best"
  count[best]=$(( count[best] + 1 ))
done < "$list"

# Steps 3-4: each worktree runs its queue; after each story the lead merges the worktree's
# branch into integration in the main checkout (serialised); before each story after the first
# the worker pulls integration (Pre-Flight).
run_queue() {
  local i=$1 wt=".claude/worktrees/teleos-$sid-$i" br="worktree/teleos-$sid-$i" first=1
  local key file
  while IFS=$'\t' read -r key file; do
    if (( ! first )); then
      (cd "$wt" && git merge -q "$integ" --no-edit) || echo "baseline: pre-flight merge failed in $wt" >&2
    fi
    first=0
    printf -- '- story_key: `%s`\n- story_file: `%s`\n' "$key" "$file" \
      | (cd "$wt" && claude -p --output-format json) > "$state/result-$key.json" \
      || echo "baseline: agent failed on $key" >&2
    (
      flock 9
      git checkout -q "$integ" && git merge -q "$br" --no-edit && git checkout -q main
    ) 9> "$lock" || echo "baseline: merging $br into $integ failed" >&2
  done < "$state/queue-$i"
}
for i in $(seq 1 "$n"); do run_queue "$i" & done
wait

# Step 5: final merge and clean-up.
git checkout -q main && git merge -q "$integ" --no-edit
for i in $(seq 1 "$n"); do git worktree remove --force ".claude/worktrees/teleos-$sid-$i"; done
for i in $(seq 1 "$n"); do git branch -q -D "worktree/teleos-$sid-$i"; done
git branch -q -D "$integ"
