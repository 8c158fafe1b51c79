//! Engine-wide settings (`SecRuleEngine`, body access and limits, …) and
//! the directives that make them.

use crate::error::ErrorKind;
use crate::lexer::Directive;
use crate::rule::{self, EngineMode};

/// What `SecRequestBodyLimitAction` says to do with a body over the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LimitAction {
    Reject,
    ProcessPartial,
}

/// Engine-wide settings made by directives.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub mode: EngineMode,
    pub request_body_access: bool,
    pub response_body_access: bool,
    /// ModSecurity's default, 12.5 MiB: the hard cap on a buffered request body.
    pub request_body_limit: u64,
    /// ModSecurity's default, 128 KiB: the cap on a body without files.
    pub request_body_no_files_limit: u64,
    pub request_body_limit_action: LimitAction,
    /// ModSecurity's default, 512 KiB of response body inspected.
    pub response_body_limit: u64,
    pub response_body_limit_action: LimitAction,
    pub response_mime_types: Vec<String>,
    /// How many arguments are parsed at most; 1000 like ModSecurity's default.
    pub arguments_limit: usize,
    pub component_signatures: Vec<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            mode: EngineMode::On,
            request_body_access: false,
            response_body_access: false,
            request_body_limit: 13_107_200,
            request_body_no_files_limit: 131_072,
            request_body_limit_action: LimitAction::Reject,
            response_body_limit: 524_288,
            response_body_limit_action: LimitAction::ProcessPartial,
            response_mime_types: vec!["text/plain".into(), "text/html".into()],
            arguments_limit: 1000,
            component_signatures: Vec::new(),
        }
    }
}

impl Config {
    /// Applies `d` if it is a settings directive; `Ok(false)` when it is not
    /// one.
    pub(super) fn set(&mut self, d: &Directive) -> Result<bool, ErrorKind> {
        let on = |s: &str| match s.to_ascii_lowercase().as_str() {
            "on" => Ok(true),
            "off" => Ok(false),
            _ => Err(ErrorKind::Syntax(format!("expected On or Off, got `{s}`"))),
        };
        let num = |s: &str| {
            s.parse::<u64>()
                .map_err(|_| ErrorKind::Syntax(format!("expected a number, got `{s}`")))
        };
        match d.name.to_ascii_lowercase().as_str() {
            "secruleengine" => {
                self.mode = rule::parse_engine_mode(d.arg(0)?)
                    .ok_or_else(|| ErrorKind::Syntax("expected On, Off or DetectionOnly".into()))?;
            }
            "secrequestbodyaccess" => self.request_body_access = on(d.arg(0)?)?,
            "secresponsebodyaccess" => self.response_body_access = on(d.arg(0)?)?,
            "secrequestbodylimit" => self.request_body_limit = num(d.arg(0)?)?,
            "secrequestbodynofileslimit" => self.request_body_no_files_limit = num(d.arg(0)?)?,
            "secrequestbodylimitaction" | "secresponsebodylimitaction" => {
                let a = match d.arg(0)?.to_ascii_lowercase().as_str() {
                    "reject" => LimitAction::Reject,
                    "processpartial" => LimitAction::ProcessPartial,
                    other => {
                        return Err(ErrorKind::Syntax(format!(
                            "expected Reject or ProcessPartial, got `{other}`"
                        )))
                    }
                };
                if d.name.eq_ignore_ascii_case("secrequestbodylimitaction") {
                    self.request_body_limit_action = a;
                } else {
                    self.response_body_limit_action = a;
                }
            }
            "secresponsebodylimit" => self.response_body_limit = num(d.arg(0)?)?,
            "secresponsebodymimetype" => {
                self.response_mime_types = d
                    .args
                    .iter()
                    .flat_map(|a| a.split_whitespace())
                    .map(|s| s.to_ascii_lowercase())
                    .collect();
            }
            "secresponsebodymimetypesclear" => self.response_mime_types.clear(),
            "secargumentslimit" => self.arguments_limit = num(d.arg(0)?)? as usize,
            "seccomponentsignature" => self.component_signatures.push(d.arg(0)?.to_string()),
            // Accepted and checked; collections live for one transaction.
            "seccollectiontimeout" => {
                num(d.arg(0)?)?;
            }
            _ => return Ok(false),
        }
        Ok(true)
    }
}
