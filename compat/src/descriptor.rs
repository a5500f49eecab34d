//! Parses layout descriptors (see [`persist_core::layout`]) into field paths, and diffs two of them.

use std::collections::HashMap;

/// One node of a descriptor flattened to `path: summary`, e.g. `q_table[].q_value: @16 f64:8/8`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldLine {
    /// The field path from the state's root (`journey.ewma_flip_rate`, `model::Network.layers[]`).
    pub path: String,
    /// The node's own part of the descriptor: archived offset (struct fields), kind and shape.
    pub summary: String,
    /// For a field without a recorded offset (the fields of an enum variant), its position
    /// among its variant's fields, from 0: their order is part of the layout, but not of the
    /// summary (so not of the `fields:` list of a snapshot file either). `None` elsewhere.
    pub position: Option<usize>,
}

/// Flattens a state descriptor (`state NAME vN (FORMAT): TYPE`) or a bare type descriptor into
/// one line per node. `None` when the text does not parse.
pub fn flatten(descriptor: &str) -> Option<Vec<FieldLine>> {
    let body = split_header(descriptor).1;
    let mut p = Parser {
        s: body.as_bytes(),
        i: 0,
        out: Vec::new(),
    };
    p.node(String::new(), None)?;
    (p.i == p.s.len()).then_some(p.out)
}

/// The `state NAME vN (FORMAT)` prefix (empty for a bare type) and the type descriptor.
fn split_header(descriptor: &str) -> (&str, &str) {
    match descriptor.find("): ") {
        Some(at) if descriptor.starts_with("state ") => (&descriptor[..=at], &descriptor[at + 3..]),
        _ => ("", descriptor),
    }
}

/// A field-path diff of two descriptors, old → new: `- path: old`, `+ path: new`,
/// `~ path: old -> new`, and `~ path: moved from field I to J` for a field of an enum variant
/// whose position changed; at most `limit` lines (then a count of the rest). When the texts
/// differ in a way no field path shows, the two whole descriptors (`- old`, `+ new`).
pub fn diff(old: &str, new: &str, limit: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let (old_head, _) = split_header(old);
    let (new_head, _) = split_header(new);
    if old_head != new_head {
        lines.push(format!("~ (state header): {old_head} -> {new_head}"));
    }
    match (flatten(old), flatten(new)) {
        (Some(a), Some(b)) => {
            let in_new: HashMap<&str, &FieldLine> =
                b.iter().map(|l| (l.path.as_str(), l)).collect();
            let in_old: HashMap<&str, &FieldLine> =
                a.iter().map(|l| (l.path.as_str(), l)).collect();
            for l in &a {
                let Some(n) = in_new.get(l.path.as_str()) else {
                    lines.push(format!("- {}: {}", shown(&l.path), l.summary));
                    continue;
                };
                let moved = match (l.position, n.position) {
                    (Some(from), Some(to)) if from != to => {
                        Some(format!("moved from field {from} to {to}"))
                    }
                    _ => None,
                };
                match (n.summary != l.summary, moved) {
                    (true, None) => lines.push(format!(
                        "~ {}: {} -> {}",
                        shown(&l.path),
                        l.summary,
                        n.summary
                    )),
                    (true, Some(moved)) => lines.push(format!(
                        "~ {}: {} -> {} ({moved})",
                        shown(&l.path),
                        l.summary,
                        n.summary
                    )),
                    (false, Some(moved)) => lines.push(format!("~ {}: {moved}", shown(&l.path))),
                    (false, None) => {}
                }
            }
            for l in &b {
                if !in_old.contains_key(l.path.as_str()) {
                    lines.push(format!("+ {}: {}", shown(&l.path), l.summary));
                }
            }
        }
        _ => {
            lines.push(format!("- {old}"));
            lines.push(format!("+ {new}"));
        }
    }
    if lines.is_empty() && old != new {
        // A difference no field path shows: never print an empty diff for changed layouts.
        lines.push(format!("- {old}"));
        lines.push(format!("+ {new}"));
    }
    if lines.len() > limit {
        let rest = lines.len() - limit;
        lines.truncate(limit);
        lines.push(format!("… and {rest} more changed paths"));
    }
    lines
}

fn shown(path: &str) -> &str {
    if path.is_empty() { "(root)" } else { path }
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
    out: Vec<FieldLine>,
}

fn join(path: &str, child: &str) -> String {
    if path.is_empty() {
        child.to_string()
    } else {
        format!("{path}.{child}")
    }
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn word(&mut self) -> Option<&str> {
        let start = self.i;
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == b'_')
        {
            self.i += 1;
        }
        (self.i > start).then(|| std::str::from_utf8(&self.s[start..self.i]).ok())?
    }

    fn digits(&mut self) -> Option<&str> {
        let start = self.i;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.i += 1;
        }
        (self.i > start).then(|| std::str::from_utf8(&self.s[start..self.i]).ok())?
    }

    /// One type at `path`; `offset` is its archived offset when it is a struct field.
    fn node(&mut self, path: String, offset: Option<&str>) -> Option<()> {
        let at = offset.map(|o| format!("@{o} ")).unwrap_or_default();
        let name = self.word()?.to_string();
        if !self.eat(b':') {
            // `recN`: a back-reference to an enclosing type.
            name.starts_with("rec").then_some(())?;
            self.out.push(FieldLine {
                path,
                summary: format!("{at}{name}"),
                position: None,
            });
            return Some(());
        }
        let shape = if self.eat(b'?') {
            "?".to_string()
        } else {
            let size = self.digits()?.to_string();
            self.eat(b'/').then_some(())?;
            format!("{size}/{}", self.digits()?)
        };
        self.out.push(FieldLine {
            path: path.clone(),
            summary: format!("{at}{name}:{shape}"),
            position: None,
        });
        if self.eat(b'<') {
            let mut index = 0;
            loop {
                let child = match (name.as_str(), index) {
                    ("Vec" | "Slice" | "BTreeSet" | "HashSet", _) => format!("{path}[]"),
                    (n, _) if n.starts_with("Array") => format!("{path}[]"),
                    ("Option", _) => format!("{path}?"),
                    ("Box", _) => format!("{path}*"),
                    ("BTreeMap" | "HashMap", 0) => join(&path, "key"),
                    ("BTreeMap" | "HashMap", _) => join(&path, "value"),
                    ("Tuple", i) => join(&path, &i.to_string()),
                    (_, i) => format!("{path}<{i}>"),
                };
                self.node(child, None)?;
                index += 1;
                if !self.eat(b',') {
                    break;
                }
            }
            self.eat(b'>').then_some(())?;
        }
        if self.eat(b'{') {
            if name == "enum" {
                self.variants(&path)?;
            } else {
                self.fields(&path, b'}')?;
            }
            self.eat(b'}').then_some(())?;
        }
        Some(())
    }

    fn fields(&mut self, path: &str, close: u8) -> Option<()> {
        if self.peek() == Some(close) {
            return Some(());
        }
        for position in 0.. {
            let name = self.word()?.to_string();
            let offset = if self.eat(b'@') {
                Some(self.digits()?.to_string())
            } else {
                None
            };
            self.eat(b':').then_some(())?;
            let line = self.out.len();
            self.node(join(path, &name), offset.as_deref())?;
            if offset.is_none() {
                // No offset to show the order (an enum variant's field): keep the position.
                self.out[line].position = Some(position);
            }
            if !self.eat(b',') {
                break;
            }
        }
        Some(())
    }

    fn variants(&mut self, path: &str) -> Option<()> {
        if self.peek() == Some(b'}') {
            return Some(());
        }
        loop {
            let name = self.word()?.to_string();
            self.eat(b'#').then_some(())?;
            let discriminant = self.digits()?.to_string();
            let vpath = format!("{path}::{name}");
            self.out.push(FieldLine {
                path: vpath.clone(),
                summary: format!("variant #{discriminant}"),
                position: None,
            });
            if self.eat(b'(') {
                self.fields(&vpath, b')')?;
                self.eat(b')').then_some(())?;
            }
            if !self.eat(b',') {
                return Some(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OLD: &str = "state s v1 (rkyv 0.8 (LE, aligned, 32-bit offsets)): struct:24/8{a@0:f64:8/8,b@8:f64:8/8,side@16:enum:1/1{Buy#0,Sell#1},xs@20:Vec:8/4<Tuple:8/4<u8:1/1,f32:4/4>>}";

    #[test]
    fn flattens_every_node() {
        let lines = flatten(OLD).expect("parses");
        let paths: Vec<&str> = lines.iter().map(|l| l.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "",
                "a",
                "b",
                "side",
                "side::Buy",
                "side::Sell",
                "xs",
                "xs[]",
                "xs[].0",
                "xs[].1"
            ]
        );
        assert_eq!(lines[1].summary, "@0 f64:8/8");
        assert!(flatten("struct:8/8{a@0:").is_none());
        assert_eq!(flatten("enum:1/1{A#0(x:rec1)}").expect("rec").len(), 3);
    }

    #[test]
    fn swapped_fields_and_reordered_variants_show_in_the_diff() {
        let new = OLD
            .replace("a@0:f64:8/8,b@8:f64:8/8", "b@0:f64:8/8,a@8:f64:8/8")
            .replace("Buy#0,Sell#1", "Sell#0,Buy#1");
        let d = diff(OLD, &new, 50);
        assert!(
            d.contains(&"~ a: @0 f64:8/8 -> @8 f64:8/8".to_string()),
            "{d:?}"
        );
        assert!(
            d.contains(&"~ side::Buy: variant #0 -> variant #1".to_string()),
            "{d:?}"
        );
        let renamed = OLD.replace("b@8", "c@8");
        let d = diff(OLD, &renamed, 50);
        assert_eq!(d, ["- b: @8 f64:8/8", "+ c: @8 f64:8/8"]);
    }

    #[test]
    fn reordered_fields_of_an_enum_variant_show_in_the_diff() {
        let old =
            "struct:24/8{action@0:enum:24/8{Hold#0,Open#1(qty:f64:8/8,price:f64:8/8,n:u8:1/1)}}";
        let new = old.replace("qty:f64:8/8,price:f64:8/8", "price:f64:8/8,qty:f64:8/8");
        assert_eq!(
            diff(old, &new, 50),
            [
                "~ action::Open.qty: moved from field 0 to 1",
                "~ action::Open.price: moved from field 1 to 0"
            ]
        );
        let retyped = old.replace("qty:f64:8/8,price:f64:8/8", "price:f64:8/8,qty:f32:4/4");
        assert_eq!(
            diff(old, &retyped, 50),
            [
                "~ action::Open.qty: f64:8/8 -> f32:4/4 (moved from field 0 to 1)",
                "~ action::Open.price: moved from field 1 to 0"
            ]
        );
        let lines = flatten(old).expect("parses");
        assert_eq!(
            lines.iter().map(|l| l.position).collect::<Vec<_>>(),
            [None, None, None, None, Some(0), Some(1), Some(2)]
        );
    }

    #[test]
    fn changed_rkyv_format_flags_show_in_the_header_line() {
        let new = OLD.replace("32-bit offsets", "64-bit offsets");
        let d = diff(OLD, &new, 50);
        assert_eq!(d.len(), 1, "{d:?}");
        assert!(d[0].starts_with("~ (state header): state s v1 (rkyv 0.8 (LE, aligned, 32-bit"));
        assert!(d[0].ends_with("64-bit offsets))"), "{d:?}");
    }
}
