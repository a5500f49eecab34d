//! Expected values of golden files (`v<N>.expected.txt`): the `{:#?}` `Debug` rendering of each
//! golden file's value once loaded (decoded and migrated) into the current version, so that a
//! migration that loads old generations as *another* value (two fields swapped, a default
//! changed) is caught, not only one that fails.
//!
//! `Debug` of the standard types is stable, and that of `f32`/`f64` is the shortest text that
//! round-trips, so the rendering is the same on every platform and build. It depends on the
//! state types' `Debug` impls being deterministic: derived ones are (a `HashMap` field is not:
//! its iteration order varies from run to run).

/// A parsed expected-value file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    /// The current version the value was recorded for.
    pub current_version: u32,
    /// The rendering.
    pub value: String,
}

const SEPARATOR: &str = "---\n";

/// The text of an expected-value file.
pub fn render(name: &str, version: u32, current_version: u32, value: &str) -> String {
    let mut out = format!(
        "# Expected value of the golden file v{version}.pst of state `{name}` once loaded (decoded\n\
         # and migrated) into the current version, as its `{{:#?}}` Debug rendering. Written by\n\
         # `cargo xtask schema bless`; re-recorded by bless only when the current version changes.\n\
         # A difference means that old generations now load as another value.\n\
         current_version: {current_version}\n{SEPARATOR}"
    );
    out.push_str(value);
    if !value.ends_with('\n') {
        out.push('\n');
    }
    out
}

/// Parses an expected-value file's text.
pub fn parse(text: &str) -> Result<Expected, String> {
    // A checkout that converted line endings (`core.autocrlf`) still compares equal.
    let text = text.replace("\r\n", "\n");
    let (head, value) = text
        .split_once(&format!("\n{SEPARATOR}"))
        .ok_or_else(|| format!("no `{}` line", SEPARATOR.trim_end()))?;
    let current_version = head
        .lines()
        .find_map(|l| l.strip_prefix("current_version: "))
        .ok_or("no `current_version:` line")?
        .parse()
        .map_err(|e| format!("current_version: {e}"))?;
    Ok(Expected {
        current_version,
        value: value.to_string(),
    })
}

/// A line diff, expected → actual: `- N: line` (expected line N) and `+ N: line` (actual
/// line N), at most `limit` lines (then a count of the rest).
pub fn line_diff(expected: &str, actual: &str, limit: usize) -> Vec<String> {
    let a: Vec<&str> = expected.lines().collect();
    let b: Vec<&str> = actual.lines().collect();
    let prefix = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let suffix = a[prefix..]
        .iter()
        .rev()
        .zip(b[prefix..].iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    let (a_mid, b_mid) = (&a[prefix..a.len() - suffix], &b[prefix..b.len() - suffix]);
    let mut out = Vec::new();
    for op in edit_script(a_mid, b_mid) {
        out.push(match op {
            Edit::Del(i) => format!("- {}: {}", prefix + i + 1, a_mid[i]),
            Edit::Ins(j) => format!("+ {}: {}", prefix + j + 1, b_mid[j]),
        });
    }
    if out.len() > limit {
        let rest = out.len() - limit;
        out.truncate(limit);
        out.push(format!("… and {rest} more changed lines"));
    }
    out
}

enum Edit {
    Del(usize),
    Ins(usize),
}

/// The deletions and insertions turning `a` into `b`, by longest common subsequence (all of `a`
/// deleted then all of `b` inserted when the table would be too large).
fn edit_script(a: &[&str], b: &[&str]) -> Vec<Edit> {
    const MAX_CELLS: usize = 4_000_000;
    if a.is_empty() || b.is_empty() || (a.len() + 1) * (b.len() + 1) > MAX_CELLS {
        return (0..a.len())
            .map(Edit::Del)
            .chain((0..b.len()).map(Edit::Ins))
            .collect();
    }
    // lcs[i][j]: the LCS length of a[i..] and b[j..].
    let width = b.len() + 1;
    let mut lcs = vec![0u32; (a.len() + 1) * width];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i * width + j] = if a[i] == b[j] {
                lcs[(i + 1) * width + j + 1] + 1
            } else {
                lcs[(i + 1) * width + j].max(lcs[i * width + j + 1])
            };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    while i < a.len() && j < b.len() {
        if a[i] == b[j] {
            i += 1;
            j += 1;
        } else if lcs[(i + 1) * width + j] >= lcs[i * width + j + 1] {
            out.push(Edit::Del(i));
            i += 1;
        } else {
            out.push(Edit::Ins(j));
            j += 1;
        }
    }
    out.extend((i..a.len()).map(Edit::Del));
    out.extend((j..b.len()).map(Edit::Ins));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_and_parses() {
        let text = render("agent", 1, 2, "Agent {\n    alpha: 0.25,\n}");
        assert!(text.starts_with("# Expected value of the golden file v1.pst of state `agent`"));
        let parsed = parse(&text).expect("parses");
        assert_eq!(
            parsed,
            Expected {
                current_version: 2,
                value: "Agent {\n    alpha: 0.25,\n}\n".to_string()
            }
        );
        assert!(parse("current_version: 2\nAgent {}").is_err());
        assert!(parse("current_version: x\n---\nAgent {}").is_err());
    }

    #[test]
    fn diff_shows_changed_lines_with_their_numbers() {
        let old = "A {\n    alpha: 0.25,\n    gamma: 0.99,\n    n: 1,\n}\n";
        let new = "A {\n    alpha: 0.99,\n    gamma: 0.25,\n    n: 1,\n}\n";
        assert_eq!(
            line_diff(old, new, 10),
            [
                "- 2:     alpha: 0.25,",
                "- 3:     gamma: 0.99,",
                "+ 2:     alpha: 0.99,",
                "+ 3:     gamma: 0.25,"
            ]
        );
        let inserted = "A {\n    alpha: 0.25,\n    beta: 2.0,\n    gamma: 0.99,\n    n: 1,\n}\n";
        assert_eq!(line_diff(old, inserted, 10), ["+ 3:     beta: 2.0,"]);
        assert_eq!(line_diff(old, old, 10), Vec::<String>::new());
        assert_eq!(line_diff(old, new, 1).len(), 2, "limited, then a count");
    }
}
