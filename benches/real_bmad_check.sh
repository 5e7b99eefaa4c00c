#!/usr/bin/env bash
# Coverage of story discovery on real BMAD repositories (not run by CI).
#
# Usage: benches/real_bmad_check.sh GIT_DIR:COMMIT [GIT_DIR:COMMIT ...]
#   e.g. benches/real_bmad_check.sh /work/.mirror/Fledgely+fledgely/repo:9d1e6133
#
# Each repository is exported at its commit (git archive) into a temporary folder, made a git
# repository, and scanned with `git-teleos scan --json` and no flags. Its stories are the
# `development_status` keys (not `epic-…`, not `…-retrospective`) of every sprint-status.yaml
# that have a `<key>.md` or `story-<key>.md` anywhere in the tree; the script prints how many
# of them the scan lists, how many more it found but skipped for having no tasks (neither
# checkboxes nor `### Task N` headings), and how many listed files have non-story names.
# BIN defaults to target/release/git-teleos.
set -euo pipefail
BIN=${BIN:-$(cd "$(dirname "$0")/.." && pwd)/target/release/git-teleos}
[ -x "$BIN" ] || { echo "error: $BIN not built (cargo build --release)" >&2; exit 2; }
[ $# -gt 0 ] || { echo "usage: $0 GIT_DIR:COMMIT ..." >&2; exit 2; }
status=0
for spec in "$@"; do
  gitdir=${spec%:*}
  commit=${spec##*:}
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  # Snapshots may lack large blobs: take what can be read, and say so.
  git --git-dir="$gitdir" archive "$commit" 2>/dev/null | tar -x -C "$tmp" 2>/dev/null \
    || echo "$spec: (export incomplete: some blobs are missing from the snapshot)"
  git -C "$tmp" init -q
  env -u GIT_DIR -u GIT_WORK_TREE "$BIN" -C "$tmp" scan --json >"$tmp/.scan.json" 2>"$tmp/.scan.err" \
    || { echo "$spec: scan failed: $(cat "$tmp/.scan.err")"; status=1; rm -rf "$tmp"; continue; }
  python3 - "$tmp" "$spec" <<'PY' || status=1
import json, os, sys
root, spec = sys.argv[1], sys.argv[2]
skip = {".git", "node_modules", "target", "vendor", "dist", "build"}
names, trackers = set(), []
for d, dirs, files in os.walk(root):
    dirs[:] = [x for x in dirs if x not in skip]
    for f in files:
        if f in ("sprint-status.yaml", "sprint-status.yml"):
            trackers.append(os.path.join(d, f))
        elif f.endswith(".md"):
            names.add(f)
keys = set()
for t in trackers:
    block, indent = False, None
    try:
        lines = open(t, encoding="utf-8", errors="replace").readlines()
    except OSError:  # a broken symlink
        continue
    for line in lines:
        s = line.rstrip("\r\n").lstrip(" \t")
        if not s or s.startswith("#"):
            continue
        i = len(line) - len(line.lstrip(" \t"))
        if i == 0:
            block, indent = s.split("#")[0].strip() == "development_status:", None
            continue
        if not block:
            continue
        indent = i if indent is None else indent
        if i != indent or ":" not in s:
            continue
        k = s.split(":")[0].strip().strip("'\"")
        if k and not k.startswith("epic-") and not k.endswith("-retrospective"):
            keys.add(k)
stories = {k for k in keys if k + ".md" in names or "story-" + k + ".md" in names}
scan = json.load(open(os.path.join(root, ".scan.json")))
listed = [s for c in ("clean", "closeable", "needs_pipeline") for s in scan[c]]
listed_keys = {s["story_key"] for s in listed}
found = {k for k in stories if k in listed_keys or "story-" + k in listed_keys}
# Read but without tasks (neither checkboxes nor `### Task N` headings): reported in `skipped`.
no_tasks = {os.path.basename(s["filename"])[:-3] for s in scan["skipped"] if s["reason"].startswith("no tasks")}
seen = found | {k for k in stories if k in no_tasks or "story-" + k in no_tasks}
import re
doc = re.compile(r"(^|[-_.])(epics?|retro|retrospective|tech-spec|validation|report|summary|completion)([-_.]|$)", re.I)
unprefixed = lambda k: k[6:] if k.startswith("story-") else k
docs = [s["path"] for s in listed if unprefixed(s["story_key"]) not in keys and doc.search(s["story_key"])]
pct = 100.0 * len(found) / len(stories) if stories else 100.0
print(f"{spec}: {len(found)}/{len(stories)} stories listed ({pct:.1f}%), "
      f"{len(seen)}/{len(stories)} found counting those without tasks, "
      f"{len(listed)} listed in all, {len(docs)} non-story docs listed; "
      f"discovered_by={scan['discovered_by']} dirs={scan['artifacts_dirs'][:4]}")
for d in docs[:5]:
    print("   non-story listed:", d)
sys.exit(0 if pct >= 90 and not docs else 1)
PY
  rm -rf "$tmp"
  trap - EXIT
done
exit $status
