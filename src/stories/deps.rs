//! Story keys and the dependency graph: name a story by key or unambiguous prefix, resolve the
//! raw references a story file makes, and break dependency cycles (never hang on them).

use std::collections::{BTreeMap, BTreeSet};

use rayon::prelude::*;

/// A key or reference in comparable form: lowercase, dots and underscores as dashes, no
/// `story-` prefix.
/// `Story-14.20-Slug` → `14-20-slug`.
pub fn normalize_key(key: &str) -> String {
    let lower = key.trim().to_lowercase().replace(['.', '_'], "-");
    match lower.strip_prefix("story-") {
        Some(rest) if !rest.is_empty() => rest.to_string(),
        _ => lower,
    }
}

/// Why a wanted key did not name exactly one story.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyMatch {
    #[error("no story matches '{wanted}'")]
    NoMatch { wanted: String },
    #[error("'{wanted}' is ambiguous: it matches {}", candidates.join(", "))]
    Ambiguous {
        wanted: String,
        candidates: Vec<String>,
    },
}

/// Story keys indexed for lookup by exact key, normalised key or prefix.
#[derive(Debug, Clone, Default)]
pub struct KeyIndex {
    /// (normalised key, original key), sorted: a prefix's matches are one contiguous run.
    sorted: Vec<(String, String)>,
    exact: BTreeSet<String>,
}

impl KeyIndex {
    pub fn new<S: AsRef<str>>(keys: &[S]) -> Self {
        let mut sorted: Vec<(String, String)> = keys
            .iter()
            .map(|k| (normalize_key(k.as_ref()), k.as_ref().to_string()))
            .collect();
        sorted.sort();
        sorted.dedup();
        let exact = keys.iter().map(|k| k.as_ref().to_string()).collect();
        KeyIndex { sorted, exact }
    }

    /// The key `wanted` names. Tried in order, the first tier with any match decides:
    /// the exact key; the same key normalised (`story-1.2` = `1-2`); a prefix followed by a
    /// slug (`1-0` → `1-0-setup`, not `1-0-2-db`); any prefix ending at a dash.
    pub fn lookup(&self, wanted: &str) -> Result<String, KeyMatch> {
        if self.exact.contains(wanted) {
            return Ok(wanted.to_string());
        }
        let norm = normalize_key(wanted);
        let no_match = || KeyMatch::NoMatch {
            wanted: wanted.to_string(),
        };
        if norm.is_empty() {
            return Err(no_match());
        }
        let same: Vec<&String> = self
            .prefixed(&norm)
            .filter(|(n, _)| **n == norm)
            .map(|(_, k)| k)
            .collect();
        let dashed = format!("{norm}-");
        let longer: Vec<(&String, &String)> = self.prefixed(&dashed).collect();
        let slugged: Vec<&String> = longer
            .iter()
            .filter(|(n, _)| {
                let next = n[dashed.len()..].split('-').next().unwrap_or("");
                !next.bytes().all(|b| b.is_ascii_digit())
            })
            .map(|(_, k)| *k)
            .collect();
        let any: Vec<&String> = longer.iter().map(|(_, k)| *k).collect();
        for tier in [same, slugged, any] {
            match tier.len() {
                0 => continue,
                1 => return Ok(tier[0].clone()),
                _ => {
                    return Err(KeyMatch::Ambiguous {
                        wanted: wanted.to_string(),
                        candidates: tier.into_iter().cloned().collect(),
                    })
                }
            }
        }
        Err(no_match())
    }

    /// Like [`KeyIndex::lookup`], then, when a reference carrying a slug (`6-5-old-name`)
    /// matches nothing, retried with its numeric part (`6-5`): slugs get renamed, numbers don't.
    pub fn lookup_ref(&self, reference: &str) -> Result<String, KeyMatch> {
        match self.lookup(reference) {
            Err(KeyMatch::NoMatch { .. }) => {
                let norm = normalize_key(reference);
                let numeric: Vec<&str> = norm
                    .split('-')
                    .enumerate()
                    .take_while(|(i, s)| *i == 0 || s.bytes().all(|b| b.is_ascii_digit()))
                    .map(|(_, s)| s)
                    .collect();
                let numeric = numeric.join("-");
                if numeric != norm && numeric.contains('-') {
                    self.lookup(&numeric).map_err(|e| match e {
                        KeyMatch::NoMatch { .. } => KeyMatch::NoMatch {
                            wanted: reference.to_string(),
                        },
                        other => other,
                    })
                } else {
                    Err(KeyMatch::NoMatch {
                        wanted: reference.to_string(),
                    })
                }
            }
            other => other,
        }
    }

    fn prefixed<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = (&'a String, &'a String)> {
        let start = self.sorted.partition_point(|(n, _)| n.as_str() < prefix);
        self.sorted[start..]
            .iter()
            .take_while(move |(n, _)| n.starts_with(prefix))
            .map(|(n, k)| (n, k))
    }
}

/// The story `wanted` names among `keys`: its full key or an unambiguous prefix
/// (`1-2` for `1-2-user-login`); an exact match always wins.
pub fn resolve_key_prefix(keys: &[String], wanted: &str) -> Result<String, KeyMatch> {
    KeyIndex::new(keys).lookup(wanted)
}

/// The resolved dependency graph of a set of stories.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DependencyGraph {
    /// Story key → keys it depends on (resolved, de-duplicated, cycle-broken), for every story.
    pub edges: BTreeMap<String, Vec<String>>,
    /// Each cycle found, as keys in order (`a → b → a` is `[a, b]`); its closing edge was dropped.
    pub cycles: Vec<Vec<String>>,
    /// References that named no story or several.
    pub warnings: Vec<String>,
}

/// Resolve each story's raw references against all story keys, then break cycles.
/// `stories` pairs each key with its raw references (as [`super::tasks::ParsedStory`] gives them).
pub fn resolve_dependencies(stories: &[(String, Vec<String>)]) -> DependencyGraph {
    let keys: Vec<&str> = stories.iter().map(|(k, _)| k.as_str()).collect();
    let index = KeyIndex::new(&keys);
    // The look-ups are independent and most of the work on thousands of stories: done in
    // parallel, then gathered in story order so edges and warnings come out the same.
    let found: Vec<Vec<Result<String, KeyMatch>>> = stories
        .par_iter()
        .map(|(_, refs)| refs.iter().map(|r| index.lookup_ref(r)).collect())
        .collect();
    let mut graph = DependencyGraph::default();
    for ((key, _), found) in stories.iter().zip(found) {
        let mut deps: Vec<String> = Vec::new();
        for lookup in found {
            match lookup {
                // A story naming itself (its own title, "this story") is no dependency.
                Ok(dep) if dep == *key => {}
                Ok(dep) => {
                    if !deps.contains(&dep) {
                        deps.push(dep);
                    }
                }
                Err(e) => graph.warnings.push(format!("story {key}: dependency {e}")),
            }
        }
        graph.edges.insert(key.clone(), deps);
    }
    graph.cycles = break_cycles(&mut graph.edges);
    graph
}

/// Find cycles by an iterative depth-first search (no recursion, so no stack overflow on long
/// chains) and drop the edge closing each one. Back edges of a DFS are exactly what keeps a
/// graph cyclic, so the result is acyclic. Edges to unknown keys are kept (they close no cycle).
pub fn break_cycles(edges: &mut BTreeMap<String, Vec<String>>) -> Vec<Vec<String>> {
    let keys: Vec<String> = edges.keys().cloned().collect();
    let id = |k: &str| keys.binary_search_by(|probe| probe.as_str().cmp(k)).ok();
    let adjacency: Vec<Vec<Option<usize>>> = keys
        .iter()
        .map(|k| edges[k].iter().map(|d| id(d)).collect())
        .collect();

    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        OnStack(usize),
        Done,
    }
    let mut mark = vec![Mark::New; keys.len()];
    let mut dropped: Vec<(usize, usize)> = Vec::new();
    let mut cycles = Vec::new();
    for root in 0..keys.len() {
        if mark[root] != Mark::New {
            continue;
        }
        // (node, index of the next edge to follow)
        let mut stack: Vec<(usize, usize)> = vec![(root, 0)];
        mark[root] = Mark::OnStack(0);
        while let Some(&mut (node, ref mut next)) = stack.last_mut() {
            let Some(&target) = adjacency[node].get(*next) else {
                mark[node] = Mark::Done;
                stack.pop();
                continue;
            };
            let edge = *next;
            *next += 1;
            let Some(target) = target else { continue };
            match mark[target] {
                Mark::New => {
                    mark[target] = Mark::OnStack(stack.len());
                    stack.push((target, 0));
                }
                Mark::OnStack(depth) => {
                    cycles.push(
                        stack[depth..]
                            .iter()
                            .map(|&(n, _)| keys[n].clone())
                            .collect(),
                    );
                    dropped.push((node, edge));
                }
                Mark::Done => {}
            }
        }
    }
    // Remove dropped edges by position, highest first so earlier positions stay valid.
    dropped.sort_unstable_by(|a, b| b.cmp(a));
    for (node, edge) in dropped {
        if let Some(list) = edges.get_mut(&keys[node]) {
            list.remove(edge);
        }
    }
    cycles
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn normalizes() {
        assert_eq!(normalize_key("Story-14.20-Slug"), "14-20-slug");
        assert_eq!(normalize_key("story.6.5"), "6-5");
        assert_eq!(normalize_key("Story_6_5"), "6-5");
        assert_eq!(normalize_key("story"), "story");
        assert_eq!(normalize_key("1-2-user-login"), "1-2-user-login");
    }

    #[test]
    fn prefix_resolution() {
        let ks = keys(&[
            "1-2-user-login",
            "1-20-admin",
            "1-0-setup",
            "1-0-2-db",
            "story-2.5-api",
            "3-1",
            "3-1-x",
        ]);
        assert_eq!(resolve_key_prefix(&ks, "1-2").unwrap(), "1-2-user-login");
        assert_eq!(
            resolve_key_prefix(&ks, "1-2-user-login").unwrap(),
            "1-2-user-login"
        );
        assert_eq!(resolve_key_prefix(&ks, "1-20").unwrap(), "1-20-admin");
        // A slug after the prefix beats more numbers.
        assert_eq!(resolve_key_prefix(&ks, "1-0").unwrap(), "1-0-setup");
        assert_eq!(resolve_key_prefix(&ks, "1-0-2").unwrap(), "1-0-2-db");
        assert_eq!(resolve_key_prefix(&ks, "2.5").unwrap(), "story-2.5-api");
        assert_eq!(
            resolve_key_prefix(&ks, "Story 2-5".replace(' ', "-").as_str()).unwrap(),
            "story-2.5-api"
        );
        // Exact wins over prefix.
        assert_eq!(resolve_key_prefix(&ks, "3-1").unwrap(), "3-1");
    }

    #[test]
    fn prefix_errors() {
        let ks = keys(&["1-2-login", "1-2-logout", "1-3"]);
        assert_eq!(
            resolve_key_prefix(&ks, "1-2"),
            Err(KeyMatch::Ambiguous {
                wanted: "1-2".into(),
                candidates: keys(&["1-2-login", "1-2-logout"])
            })
        );
        assert_eq!(
            resolve_key_prefix(&ks, "9-9"),
            Err(KeyMatch::NoMatch {
                wanted: "9-9".into()
            })
        );
        assert_eq!(
            resolve_key_prefix(&ks, ""),
            Err(KeyMatch::NoMatch { wanted: "".into() })
        );
        // "1" is no prefix of "1-2-login" at a dash boundary? It is: "1-" starts both and 1-3.
        assert!(matches!(
            resolve_key_prefix(&ks, "1"),
            Err(KeyMatch::Ambiguous { .. })
        ));
        let msg = resolve_key_prefix(&ks, "1-2").unwrap_err().to_string();
        assert_eq!(msg, "'1-2' is ambiguous: it matches 1-2-login, 1-2-logout");
    }

    #[test]
    fn resolves_refs_ignoring_self_and_warning_on_unknown() {
        let stories = vec![
            ("6-5-user-login".to_string(), keys(&["6-5", "6-4", "9-9"])),
            ("6-4-db".to_string(), keys(&["story-6-4", "6-4-old-slug"])),
            ("6-6".to_string(), keys(&["6-5-renamed", "6-5", "6-4"])),
        ];
        let g = resolve_dependencies(&stories);
        assert_eq!(g.edges["6-5-user-login"], ["6-4-db"]);
        assert_eq!(g.edges["6-4-db"], Vec::<String>::new());
        assert_eq!(g.edges["6-6"], ["6-5-user-login", "6-4-db"]);
        assert_eq!(
            g.warnings,
            ["story 6-5-user-login: dependency no story matches '9-9'"]
        );
        assert!(g.cycles.is_empty());
    }

    #[test]
    fn three_node_cycle_is_broken() {
        let stories = vec![
            ("a-1".to_string(), keys(&["b-1"])),
            ("b-1".to_string(), keys(&["c-1"])),
            ("c-1".to_string(), keys(&["a-1"])),
        ];
        let g = resolve_dependencies(&stories);
        assert_eq!(g.cycles, vec![keys(&["a-1", "b-1", "c-1"])]);
        assert_eq!(g.edges["c-1"], Vec::<String>::new());
        assert_eq!(g.edges["a-1"], ["b-1"]);
    }

    #[test]
    fn self_loop_and_two_cycles() {
        let mut edges: BTreeMap<String, Vec<String>> = BTreeMap::new();
        edges.insert("a".into(), keys(&["a", "b", "zz-unknown"]));
        edges.insert("b".into(), keys(&["a", "c"]));
        edges.insert("c".into(), keys(&["b"]));
        let cycles = break_cycles(&mut edges);
        assert_eq!(
            cycles,
            vec![keys(&["a"]), keys(&["a", "b"]), keys(&["b", "c"])]
        );
        assert_eq!(edges["a"], ["b", "zz-unknown"]);
        assert_eq!(edges["b"], ["c"]);
        assert!(edges["c"].is_empty());
        assert!(break_cycles(&mut edges).is_empty());
    }

    #[test]
    fn long_chain_does_not_overflow() {
        let n = 200_000;
        let mut edges: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for i in 0..n {
            edges.insert(format!("k{i:06}"), vec![format!("k{:06}", (i + 1) % n)]);
        }
        let cycles = break_cycles(&mut edges);
        assert_eq!(cycles.len(), 1);
        assert_eq!(cycles[0].len(), n);
    }
}
