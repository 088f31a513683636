//! YAML text → raw shapes, and where every value of the text sits.
//!
//! Key paths are built from steps (a key, an index), never by editing text: `connectors[0].values`
//! stays exactly that. Locations come from the document itself ([`Locations`]), so validation
//! names the line and column of any key path without carrying spans through the raw shapes.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use serde::Deserialize;
use serde::de::{DeserializeOwned, MapAccess, SeqAccess, Visitor};
use serde_path_to_error::Segment;
use serde_saphyr::Spanned;

use super::Problem;

/// Where a value sits in a document: `connectors[0].helo_name`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub(crate) struct KeyPath(Vec<Step>);

/// One step of a [`KeyPath`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Step {
    /// The value of a mapping's key.
    Key(String),
    /// An item of a sequence.
    Index(usize),
}

impl KeyPath {
    /// The document itself.
    pub(crate) fn root() -> Self {
        KeyPath::default()
    }

    /// The value of `key` under this path.
    pub(crate) fn key(&self, key: &str) -> Self {
        let mut steps = self.0.clone();
        steps.push(Step::Key(key.to_owned()));
        KeyPath(steps)
    }

    /// Item `index` of the sequence at this path.
    pub(crate) fn index(&self, index: usize) -> Self {
        let mut steps = self.0.clone();
        steps.push(Step::Index(index));
        KeyPath(steps)
    }

    /// The path one step up; `None` for the document.
    fn parent(&self) -> Option<Self> {
        let (_, parent) = self.0.split_last()?;
        Some(KeyPath(parent.to_vec()))
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("(document)");
        }
        for (i, step) in self.0.iter().enumerate() {
            match step {
                Step::Index(index) => write!(f, "[{index}]")?,
                Step::Key(key) => {
                    if i > 0 {
                        f.write_str(".")?;
                    }
                    // A key that is not a plain word is quoted, so that no key can pass for a
                    // path of several steps or carry control characters onto the terminal.
                    if !key.is_empty()
                        && key
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'))
                    {
                        f.write_str(key)?;
                    } else {
                        write!(f, "{key:?}")?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// The line and column (1-based) of every value of a document, by key path.
#[derive(Debug, Default)]
pub(crate) struct Locations(HashMap<KeyPath, (u64, u64)>);

impl Locations {
    /// Indexes `text`; empty when it is not YAML (a syntax error is then reported on its own).
    pub(crate) fn of(text: &str) -> Self {
        let mut locations = Locations::default();
        if let Ok(root) = serde_saphyr::from_str::<Spanned<Node>>(text) {
            locations.insert(KeyPath::root(), &root);
        }
        locations
    }

    /// Where the value at `path` sits, or else its nearest enclosing value.
    pub(crate) fn find(&self, path: &KeyPath) -> Option<(u64, u64)> {
        let mut path = path.clone();
        loop {
            if let Some(at) = self.0.get(&path) {
                return Some(*at);
            }
            path = path.parent()?;
        }
    }

    fn insert(&mut self, path: KeyPath, node: &Spanned<Node>) {
        let at = &node.referenced;
        self.0.insert(path.clone(), (at.line(), at.column()));
        match &node.value {
            Node::Map(entries) => {
                for (key, value) in entries {
                    self.insert(path.key(key), value);
                }
            }
            Node::Seq(items) => {
                for (index, item) in items.iter().enumerate() {
                    self.insert(path.index(index), item);
                }
            }
            Node::Scalar => {}
        }
    }
}

/// Deserializes YAML `text` (read from `path`) into `T`; the first problem names its line,
/// column and key path. Shared by every YAML file the exporter reads.
pub(crate) fn from_yaml<T: DeserializeOwned>(text: &str, path: &Path) -> Result<T, Problem> {
    let mut segments = Vec::new();
    serde_saphyr::with_deserializer_from_str(text, |de| {
        serde_path_to_error::deserialize(de).map_err(|e| {
            segments = e.path().iter().cloned().collect();
            e.into_inner()
        })
    })
    .map_err(|e| {
        let (line, column) = e.location().map_or((0, 0), |l| (l.line(), l.column()));
        // The message without the snippet, and without the location that Problem prints itself.
        let message = e.without_snippet().to_string();
        let message = message
            .rsplit_once(" at line ")
            .map_or(message.as_str(), |(text, _)| text)
            .to_owned();
        Problem {
            path: path.to_owned(),
            line,
            column,
            key: key_path(&segments, &Locations::of(text)).to_string(),
            message,
        }
    })
}

/// The key path of a deserializer's error path. `serde_saphyr::Spanned` adds a step named
/// `value` to the path of every value it wraps; such a step is left out when the document has
/// no key `value` there, so a real key called `value` (or `values`) is always kept.
fn key_path(segments: &[Segment], locations: &Locations) -> KeyPath {
    let known = !locations.0.is_empty();
    let mut path = KeyPath::root();
    for segment in segments {
        path = match segment {
            Segment::Seq { index } => path.index(*index),
            Segment::Map { key } if key == "value" => {
                let real = path.key(key);
                // Without an index (a syntax error), the step is taken for Spanned's.
                if known && locations.0.contains_key(&real) {
                    real
                } else {
                    path
                }
            }
            Segment::Map { key } | Segment::Enum { variant: key } => path.key(key),
            Segment::Unknown => path.key("?"),
        };
    }
    path
}

/// Any YAML value, kept only for the places of its parts.
enum Node {
    /// A mapping: each key with its value.
    Map(Vec<(String, Spanned<Node>)>),
    /// A sequence.
    Seq(Vec<Spanned<Node>>),
    /// A scalar or null.
    Scalar,
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut entries = Vec::new();
        while let Some((key, value)) = map.next_entry::<KeyText, Spanned<Node>>()? {
            entries.push((key.0, value));
        }
        Ok(Node::Map(entries))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Spanned<Node>>()? {
            items.push(item);
        }
        Ok(Node::Seq(items))
    }

    fn visit_bool<E>(self, _: bool) -> Result<Node, E> {
        Ok(Node::Scalar)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Node, E> {
        Ok(Node::Scalar)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Node, E> {
        Ok(Node::Scalar)
    }

    fn visit_i128<E>(self, _: i128) -> Result<Node, E> {
        Ok(Node::Scalar)
    }

    fn visit_u128<E>(self, _: u128) -> Result<Node, E> {
        Ok(Node::Scalar)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Node, E> {
        Ok(Node::Scalar)
    }

    fn visit_str<E>(self, _: &str) -> Result<Node, E> {
        Ok(Node::Scalar)
    }

    fn visit_bytes<E>(self, _: &[u8]) -> Result<Node, E> {
        Ok(Node::Scalar)
    }

    fn visit_unit<E>(self) -> Result<Node, E> {
        Ok(Node::Scalar)
    }

    fn visit_none<E>(self) -> Result<Node, E> {
        Ok(Node::Scalar)
    }

    fn visit_some<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<Node, D::Error> {
        deserializer.deserialize_any(NodeVisitor)
    }
}

/// A mapping key as text, whatever scalar it is written as (`1: x` has the key `1`).
struct KeyText(String);

impl<'de> Deserialize<'de> for KeyText {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(KeyTextVisitor)
    }
}

struct KeyTextVisitor;

impl Visitor<'_> for KeyTextVisitor {
    type Value = KeyText;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a scalar key")
    }

    fn visit_str<E>(self, text: &str) -> Result<KeyText, E> {
        Ok(KeyText(text.to_owned()))
    }

    fn visit_bool<E>(self, value: bool) -> Result<KeyText, E> {
        Ok(KeyText(value.to_string()))
    }

    fn visit_i64<E>(self, value: i64) -> Result<KeyText, E> {
        Ok(KeyText(value.to_string()))
    }

    fn visit_u64<E>(self, value: u64) -> Result<KeyText, E> {
        Ok(KeyText(value.to_string()))
    }

    fn visit_f64<E>(self, value: f64) -> Result<KeyText, E> {
        Ok(KeyText(value.to_string()))
    }

    fn visit_unit<E>(self) -> Result<KeyText, E> {
        Ok(KeyText("null".to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    struct Outer {
        items: Vec<Spanned<Inner>>,
    }

    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    struct Inner {
        name: Option<Spanned<String>>,
        port: Option<u16>,
    }

    fn problem(text: &str) -> String {
        from_yaml::<Outer>(text, Path::new("t.yml"))
            .expect_err("invalid")
            .to_string()
    }

    #[test]
    fn a_valid_document() {
        let outer: Outer =
            from_yaml("items:\n  - name: a\n    port: 25\n", Path::new("t.yml")).expect("valid");
        let inner = &outer.items[0].value;
        assert_eq!(inner.name.as_ref().map(|n| n.value.as_str()), Some("a"));
        assert_eq!(inner.port, Some(25));
    }

    #[test]
    fn key_paths_are_built_from_steps() {
        assert_eq!(
            problem("items:\n  - name: a\n    values: x\n"),
            "t.yml:3:5: items[0].values: unknown field `values`, expected one of name, port"
        );
        assert_eq!(
            problem("items:\n  - name: a\n    value: x\n"),
            "t.yml:3:5: items[0].value: unknown field `value`, expected one of name, port"
        );
        assert_eq!(
            problem("items:\n  - port: 70000\n"),
            "t.yml:2:11: items[0].port: invalid u16"
        );
        assert_eq!(
            problem("items:\n  - name: [1]\n"),
            "t.yml:2:11: items[0].name: expected string scalar"
        );
    }

    #[test]
    fn odd_keys_are_quoted() {
        let path = KeyPath::root().key("labels").key("a.b\r\n").index(2);
        assert_eq!(path.to_string(), "labels.\"a.b\\r\\n\"[2]");
        assert_eq!(KeyPath::root().to_string(), "(document)");
    }

    #[test]
    fn locations_of_values_and_their_parents() {
        let locations = Locations::of("a:\n  b: [x, {c: 1}]\n  d: 2\n");
        let b = KeyPath::root().key("a").key("b");
        assert_eq!(locations.find(&b), Some((2, 6)));
        assert_eq!(locations.find(&b.index(1).key("c")), Some((2, 14)));
        assert_eq!(
            locations.find(&KeyPath::root().key("a").key("d")),
            Some((3, 6))
        );
        // A key that is not there: its nearest enclosing value.
        assert_eq!(locations.find(&b.index(7)), Some((2, 6)));
    }
}
