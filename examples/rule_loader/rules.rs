//! Alerting-rule model and loader helpers for the `rule_loader` example.
//!
//! Each rule lives in its own JSON file in a rules directory. This module
//! lists those files, parses one file's text into a [`Rule`], and assembles
//! the parsed rules into a [`RuleSet`] (rejecting duplicate ids). Reading the
//! files is left to the caller, so it can count or otherwise observe reads;
//! [`LoadError::read_file`] wraps an I/O error from such a read.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;

/// How urgent a rule's alerts are, from least to most severe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    /// Every severity, least severe first (the order used by
    /// [`RuleSet::count_by_severity`]).
    pub const ALL: [Severity; 4] = [
        Severity::Low,
        Severity::Medium,
        Severity::High,
        Severity::Critical,
    ];

    /// The name used in the JSON files.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Comparison applied between an event field and a condition's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    Eq,
    Ne,
    Gt,
    Lt,
    Contains,
    Matches,
}

impl Op {
    /// The name used in the JSON files.
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Eq => "eq",
            Op::Ne => "ne",
            Op::Gt => "gt",
            Op::Lt => "lt",
            Op::Contains => "contains",
            Op::Matches => "matches",
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What to do when a rule fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    Alert,
    Block,
    Tag,
    Notify,
    RateLimit,
}

impl ActionKind {
    /// The name used in the JSON files.
    pub fn as_str(self) -> &'static str {
        match self {
            ActionKind::Alert => "alert",
            ActionKind::Block => "block",
            ActionKind::Tag => "tag",
            ActionKind::Notify => "notify",
            ActionKind::RateLimit => "rate_limit",
        }
    }
}

impl fmt::Display for ActionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A condition's operand: a JSON number or a JSON string.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum Value {
    Number(f64),
    Text(String),
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Number(n) => write!(f, "{n}"),
            Value::Text(s) => write!(f, "{s:?}"),
        }
    }
}

/// One test on an event field, e.g. `metric.value gt 85`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    pub field: String,
    pub op: Op,
    pub value: Value,
}

/// One thing to do when the rule fires, e.g. `notify slack:#ops`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Action {
    pub kind: ActionKind,
    pub target: String,
}

/// One alerting rule: the content of one rule file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub id: String,
    pub name: String,
    pub severity: Severity,
    pub description: String,
    pub conditions: Vec<Condition>,
    pub actions: Vec<Action>,
}

/// All loaded rules, in the order their files were given.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RuleSet {
    pub rules: Vec<Rule>,
}

impl RuleSet {
    /// Number of rules.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// True when there are no rules.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The rules, in load order.
    pub fn iter(&self) -> std::slice::Iter<'_, Rule> {
        self.rules.iter()
    }

    /// The rule with this id, if any.
    pub fn get(&self, id: &str) -> Option<&Rule> {
        self.rules.iter().find(|r| r.id == id)
    }

    /// How many rules have each severity, always in the order of
    /// [`Severity::ALL`] (low, medium, high, critical), zero counts included.
    pub fn count_by_severity(&self) -> [(Severity, usize); 4] {
        let mut counts = Severity::ALL.map(|s| (s, 0));
        for rule in &self.rules {
            // Discriminants follow declaration order, which matches `ALL`.
            counts[rule.severity as usize].1 += 1;
        }
        counts
    }
}

/// Why a rules directory could not be loaded.
///
/// The I/O and JSON sources are kept behind `Arc` so that the error is
/// `Clone`. `Display` names the file (or directory) and the problem,
/// including the source's message, so printing it alone is enough.
#[derive(Debug, Clone)]
pub enum LoadError {
    /// The rules directory could not be listed.
    MissingDir {
        dir: PathBuf,
        source: Arc<std::io::Error>,
    },
    /// A rule file could not be read (produced by the caller's reading code).
    ReadFile {
        path: PathBuf,
        source: Arc<std::io::Error>,
    },
    /// A rule file is not valid JSON or does not match the rule schema.
    Parse {
        path: PathBuf,
        source: Arc<serde_json::Error>,
    },
    /// Two files define a rule with the same id.
    DuplicateId {
        id: String,
        first: PathBuf,
        second: PathBuf,
    },
    /// The rules directory holds no `*.json` files.
    Empty { dir: PathBuf },
}

impl LoadError {
    /// Wraps an error from reading the rule file at `path`.
    pub fn read_file(path: &Path, source: std::io::Error) -> Self {
        LoadError::ReadFile {
            path: path.to_path_buf(),
            source: Arc::new(source),
        }
    }
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::MissingDir { dir, source } => {
                write!(
                    f,
                    "{}: cannot list rules directory: {source}",
                    dir.display()
                )
            }
            LoadError::ReadFile { path, source } => {
                write!(f, "{}: cannot read rule file: {source}", path.display())
            }
            LoadError::Parse { path, source } => {
                // serde_json renders "<message> at line L column C"; put the
                // position first so it reads "file: line L, column C: message".
                let (line, column) = (source.line(), source.column());
                let text = source.to_string();
                match text.strip_suffix(&format!(" at line {line} column {column}")) {
                    Some(message) if line > 0 => write!(
                        f,
                        "{}: line {line}, column {column}: {message}",
                        path.display()
                    ),
                    _ => write!(f, "{}: {text}", path.display()),
                }
            }
            LoadError::DuplicateId { id, first, second } => write!(
                f,
                "{}: duplicate rule id \"{id}\" (already defined in {})",
                second.display(),
                first.display()
            ),
            LoadError::Empty { dir } => {
                write!(f, "{}: no *.json rule files found", dir.display())
            }
        }
    }
}

impl std::error::Error for LoadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            LoadError::MissingDir { source, .. } | LoadError::ReadFile { source, .. } => {
                Some(source.as_ref())
            }
            LoadError::Parse { source, .. } => Some(source.as_ref()),
            LoadError::DuplicateId { .. } | LoadError::Empty { .. } => None,
        }
    }
}

/// The regular files directly in `dir` whose name ends in `.json`, sorted by
/// file name. Subdirectories are not searched.
///
/// Fails with [`LoadError::MissingDir`] if `dir` cannot be listed and with
/// [`LoadError::Empty`] if it holds no such file.
pub fn list_rule_files(dir: &Path) -> Result<Vec<PathBuf>, LoadError> {
    let missing = |source| LoadError::MissingDir {
        dir: dir.to_path_buf(),
        source: Arc::new(source),
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(missing)? {
        let path = entry.map_err(missing)?.path();
        if path.extension().is_some_and(|ext| ext == "json") && path.is_file() {
            files.push(path);
        }
    }
    if files.is_empty() {
        return Err(LoadError::Empty {
            dir: dir.to_path_buf(),
        });
    }
    files.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    Ok(files)
}

/// Parses the text of one rule file; `path` is only used in the error.
pub fn parse_rule_file(path: &Path, text: &str) -> Result<Rule, LoadError> {
    serde_json::from_str(text).map_err(|source| LoadError::Parse {
        path: path.to_path_buf(),
        source: Arc::new(source),
    })
}

/// Collects parsed rules, in the given order, into a [`RuleSet`].
///
/// Fails with [`LoadError::DuplicateId`] on the first rule whose id was
/// already used by an earlier one.
pub fn build_rule_set(parsed: Vec<(PathBuf, Rule)>) -> Result<RuleSet, LoadError> {
    let mut seen: HashMap<String, PathBuf> = HashMap::with_capacity(parsed.len());
    let mut rules = Vec::with_capacity(parsed.len());
    for (path, rule) in parsed {
        if let Some(first) = seen.get(&rule.id) {
            return Err(LoadError::DuplicateId {
                id: rule.id,
                first: first.clone(),
                second: path,
            });
        }
        seen.insert(rule.id.clone(), path);
        rules.push(rule);
    }
    Ok(RuleSet { rules })
}
