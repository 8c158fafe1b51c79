//! Recording a matched rule: the [`MatchedRule`] and the ModSecurity-style
//! error log line, both bounded in size.

use crate::rule::{Disruptive, EngineMode, Rule};

use super::{MatchedRule, Transaction};

/// The most error log lines one transaction keeps; a hostile request that
/// matches thousands of times must not grow memory without bound.
pub(super) const MAX_LOG_LINES: usize = 1000;
/// ModSecurity truncates `[data]` to 512 bytes; so do we.
pub(super) const MAX_LOGDATA: usize = 512;

impl Transaction {
    pub(super) fn record_match(&mut self, starter: &Rule, link: &Rule) {
        let a = &starter.actions;
        if let Some(s) = a.severity {
            self.st.highest_severity = self.st.highest_severity.min(s);
        }
        let logged = a.log.unwrap_or(true);
        if !logged {
            // Flow-control rules (`nolog`) match on every request; record
            // them without expanding texts nobody will read.
            if self
                .caches
                .recorded_nolog
                .insert((starter.id, starter.phase))
            {
                self.matched.push(MatchedRule {
                    id: starter.id,
                    phase: starter.phase,
                    msg: String::new(),
                    data: String::new(),
                    severity: a.severity,
                    tags: Vec::new(),
                    matched_var_name: String::new(),
                    logged,
                });
            }
            return;
        }
        let msg = a
            .msg
            .as_ref()
            .map(|m| String::from_utf8_lossy(&self.expand_in(m, starter)).into_owned())
            .unwrap_or_default();
        let mut data = a
            .logdata
            .as_ref()
            .map(|m| self.expand_in(m, starter))
            .unwrap_or_default();
        data.truncate(MAX_LOGDATA);
        let data = String::from_utf8_lossy(&data).into_owned();
        let mrule = MatchedRule {
            id: starter.id,
            phase: starter.phase,
            msg,
            data,
            severity: a.severity,
            tags: a.tags.clone(),
            matched_var_name: String::from_utf8_lossy(&self.st.matched_var_name).into_owned(),
            logged,
        };
        if logged && self.log_lines.len() < MAX_LOG_LINES {
            let line = self.format_log(starter, link, &mrule);
            self.log_lines.push(line);
        }
        self.matched.push(mrule);
    }

    fn format_log(&self, starter: &Rule, link: &Rule, m: &MatchedRule) -> String {
        use std::fmt::Write;
        let mut s = String::with_capacity(512);
        let head = if self.st.mode == EngineMode::On
            && matches!(
                starter.actions.disruptive,
                Some(Disruptive::Deny | Disruptive::Drop)
            ) {
            format!(
                "Access denied with code {} (phase {}). ",
                starter.actions.status.unwrap_or(403),
                starter.phase
            )
        } else {
            "Warning. ".to_string()
        };
        let _ = write!(
            s,
            "ModSecurity: {head}Matched \"Operator `{}' with parameter `{}' against variable `{}' (Value: `{}' )\" [file \"{}\"] [line \"{}\"] [id \"{}\"]",
            link.op_name,
            esc(link.op_arg.as_bytes(), 200),
            String::from_utf8_lossy(&self.st.matched_var_name),
            esc(&self.st.matched_var, 200),
            starter.file,
            starter.line,
            starter.id
        );
        if let Some(rev) = &starter.actions.rev {
            let _ = write!(s, " [rev \"{rev}\"]");
        }
        if starter.actions.msg.is_some() {
            let _ = write!(s, " [msg \"{}\"]", esc(m.msg.as_bytes(), 1024));
        }
        if starter.actions.logdata.is_some() {
            let _ = write!(s, " [data \"{}\"]", esc(m.data.as_bytes(), 1024));
        }
        if let Some(sev) = m.severity {
            let _ = write!(s, " [severity \"{}\"]", crate::rule::severity_name(sev));
        }
        if let Some(v) = &starter.actions.ver {
            let _ = write!(s, " [ver \"{v}\"]");
        }
        for t in &m.tags {
            let _ = write!(s, " [tag \"{}\"]", esc(t.as_bytes(), 256));
        }
        let host = self
            .header("host")
            .map(|h| String::from_utf8_lossy(h).into_owned())
            .unwrap_or_default();
        let _ = write!(
            s,
            " [hostname \"{}\"] [uri \"{}\"] [unique_id \"{}\"]",
            esc(host.as_bytes(), 256),
            esc(&self.req.filename, 256),
            self.meta.unique_id
        );
        s
    }
}

pub(super) fn esc(b: &[u8], max: usize) -> String {
    let mut s = String::new();
    for &c in b.iter().take(max) {
        match c {
            b'"' => s.push_str("\\\""),
            b'\\' => s.push_str("\\\\"),
            0x20..=0x7e => s.push(c as char),
            _ => s.push_str(&format!("\\x{c:02x}")),
        }
    }
    s
}
