#!/usr/bin/env bash
# Coverage of story discovery on real BMAD repositories (not run by CI).
#
# Usage: benches/real_bmad_check.sh GIT_DIR:COMMIT [GIT_DIR:COMMIT ...]
#   e.g. benches/real_bmad_check.sh /work/.mirror/Fledgely+fledgely/repo:9d1e6133
#
# Each repository is exported at its commit (git archive) into a temporary folder, made a git
# repository, and scanned with `git-teleos scan --json` and no flags. Its stories are the
# `development_status` keys (not `epic-…`, not `…-retrospective`) of every sprint-status.yaml
# that have a `<key>.md` or `story-<key>.md` anywhere in the tree. A story file without a task
# list (neither checkboxes nor `### Task N` headings, judged from the file by this script) has
# nothing to close and is rightly skipped by the scan, so the percentage is of the stories with
# tasks; the line also gives the count of all stories, of those without tasks, of those the scan
# found but skipped, and of listed files with non-story names. A repository passes at ≥ 90 %
# with no non-story file listed. When the snapshot lacks blobs, the files that are there are
# exported one by one.
# benches/real_bmad_repos.txt lists the repositories checked so far (owner/name commit).
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
  # Snapshots may lack large blobs, and `git archive` stops at the first one missing: then
  # every blob that is there is written one by one, and the count missing is said.
  if ! git --git-dir="$gitdir" archive "$commit" 2>/dev/null | tar -x -C "$tmp" 2>/dev/null; then
    rm -rf "$tmp" && mkdir -p "$tmp"
    python3 - "$gitdir" "$commit" "$tmp" "$spec" <<'PY'
import os, subprocess, sys
gitdir, commit, root, spec = sys.argv[1:5]
tree = subprocess.run(["git", "--git-dir", gitdir, "ls-tree", "-r", "-z", commit],
                      capture_output=True, check=True).stdout
entries = []
for rec in tree.split(b"\0"):
    if rec:
        meta, path = rec.split(b"\t", 1)
        mode, kind, sha = meta.split()
        if kind == b"blob":
            entries.append((mode, sha, os.fsdecode(path)))
cat = subprocess.Popen(["git", "--git-dir", gitdir, "cat-file", "--batch"],
                       stdin=subprocess.PIPE, stdout=subprocess.PIPE)
missing = 0
for mode, sha, path in entries:
    cat.stdin.write(sha + b"\n"); cat.stdin.flush()
    header = cat.stdout.readline().split()
    if len(header) < 3 or header[1] == b"missing":
        missing += 1
        continue
    data = cat.stdout.read(int(header[2])); cat.stdout.read(1)
    dest = os.path.join(root, path)
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    if mode == b"120000":
        os.symlink(os.fsdecode(data), dest)
    else:
        with open(dest, "wb") as f:
            f.write(data)
print(f"{spec}: (exported blob by blob: {missing} of {len(entries)} files missing from the snapshot)")
PY
  fi
  git -C "$tmp" init -q
  env -u GIT_DIR -u GIT_WORK_TREE "$BIN" -C "$tmp" scan --json >"$tmp/.scan.json" 2>"$tmp/.scan.err" \
    || { echo "$spec: scan failed: $(cat "$tmp/.scan.err")"; status=1; rm -rf "$tmp"; continue; }
  python3 - "$tmp" "$spec" <<'PY' || status=1
import json, os, sys
root, spec = sys.argv[1], sys.argv[2]
skip = {".git", "node_modules", "target", "vendor", "dist", "build"}
names, trackers = {}, []
for d, dirs, files in os.walk(root):
    dirs[:] = [x for x in dirs if x not in skip]
    for f in files:
        if f in ("sprint-status.yaml", "sprint-status.yml"):
            trackers.append(os.path.join(d, f))
        elif f.endswith(".md"):
            names.setdefault(f, []).append(os.path.join(d, f))
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
# A story file without a task list (neither checkboxes nor `### Task N` headings) has nothing
# to close, and the scan rightly skips it: judged here from the files, not from the scan.
import re
task = re.compile(rb"^[ \t]*([-*+]|[0-9]{1,9}[.)]) {1,4}\[[ xX]\]|^#{2,6} +task *#* *[0-9]", re.I | re.M)
def has_tasks(name):
    for p in names[name]:
        try:
            if task.search(open(p, "rb").read()):
                return True
        except OSError:
            pass
    return False
with_tasks = {k for k in stories
              if any(n in names and has_tasks(n) for n in (k + ".md", "story-" + k + ".md"))}
scan = json.load(open(os.path.join(root, ".scan.json")))
listed = [s for c in ("clean", "closeable", "needs_pipeline") for s in scan[c]]
listed_keys = {s["story_key"] for s in listed}
found = {k for k in stories if k in listed_keys or "story-" + k in listed_keys}
# Read but without tasks (neither checkboxes nor `### Task N` headings): reported in `skipped`.
no_tasks = {os.path.basename(s["filename"])[:-3] for s in scan["skipped"] if s["reason"].startswith("no tasks")}
seen = found | {k for k in stories if k in no_tasks or "story-" + k in no_tasks}
doc = re.compile(r"(^|[-_.])(epics?|retro|retrospective|tech-spec|validation|report|summary|completion|prd|guide)([-_.]|$)", re.I)
unprefixed = lambda k: k[6:] if k.startswith("story-") else k
# A file no key names is a non-story document when its name says so, or its title (first `# `
# line) is an architecture or QA document's.
doc_title = re.compile(r"^# +(architecture|qa |manual qa|pending actions)", re.I | re.M)
def titled_doc(path):
    try:
        return bool(doc_title.match(open(os.path.join(root, path), errors="replace").read(4096)))
    except OSError:
        return False
docs = [s["path"] for s in listed if unprefixed(s["story_key"]) not in keys
        and (doc.search(s["story_key"]) or titled_doc(s["path"]))]
pct = 100.0 * len(found & with_tasks) / len(with_tasks) if with_tasks else 100.0
print(f"{spec}: {len(found & with_tasks)}/{len(with_tasks)} stories with tasks listed ({pct:.1f}%); "
      f"{len(found)}/{len(stories)} of all stories, {len(stories - with_tasks)} without tasks; "
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
