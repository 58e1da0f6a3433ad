//! Temporary stand-in with the agreed API; replaced by the rule language branch.
use crate::wire::FrameView;

#[derive(Debug, Clone)]
pub struct Rule {
    src: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleError {
    pub column: usize,
    pub len: usize,
    pub message: String,
    pub hint: Option<String>,
}

impl std::fmt::Display for RuleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "column {}: {}", self.column, self.message)
    }
}

impl std::error::Error for RuleError {}

impl Rule {
    pub fn parse(src: &str) -> Result<Rule, RuleError> {
        Ok(Rule {
            src: src.to_string(),
        })
    }
    pub fn matches(&self, v: &FrameView) -> bool {
        match self.src.as_str() {
            "tcp" => v.ip_proto == 6,
            "udp" => v.ip_proto == 17,
            _ => false,
        }
    }
    pub fn is_default(&self) -> bool {
        self.src == "default"
    }
    pub fn depends_on_packet(&self) -> bool {
        false
    }
    pub fn never_matches(&self) -> bool {
        false
    }
    pub fn is_shadowed_by(&self, _earlier: &[&Rule]) -> bool {
        false
    }
    pub fn source(&self) -> &str {
        &self.src
    }
}
