//! The non-disruptive actions a matching rule runs once per matched value:
//! `setvar` and `ctl`.

use std::borrow::Cow;

use crate::macros::Macro;
use crate::rule::{Action, Ctl, Rule, SetOp};

use super::expand::expand;
use super::{store_index, Transaction};

impl Transaction {
    pub(super) fn expand_in(&self, m: &Macro, rule: &Rule) -> Vec<u8> {
        self.expanded(m, rule).into_owned()
    }

    /// A macro expanded against this transaction, borrowed when it is a
    /// literal or one store variable, so that reading a number allocates
    /// nothing.
    fn expanded<'a>(&'a self, m: &'a Macro, rule: &Rule) -> Cow<'a, [u8]> {
        expand(&self.req, &self.st, &self.meta, self.started, rule, m)
    }

    pub(super) fn run_action(&mut self, starter: &Rule, a: &Action) {
        match a {
            Action::SetVar(sv) => {
                let name: Cow<'_, str> = match sv.name.as_literal() {
                    Some(l) => match std::str::from_utf8(l) {
                        Ok(n) => Cow::Borrowed(n),
                        Err(_) => String::from_utf8_lossy(l),
                    },
                    None => Cow::Owned(
                        String::from_utf8_lossy(&self.expand_in(&sv.name, starter))
                            .to_ascii_lowercase(),
                    ),
                };
                if sv.op == SetOp::Add || sv.op == SetOp::Sub {
                    // The common CRS case (`tx.score=+%{tx.critical_anomaly_score}`):
                    // update the number in place, allocating nothing once
                    // the variable exists.
                    let d = crate::operator::parse_int(&self.expanded(&sv.value, starter));
                    let store = &mut self.st.stores[store_index(sv.collection)];
                    let cur = store
                        .get(name.as_ref())
                        .map(|v| crate::operator::parse_int(v))
                        .unwrap_or(0);
                    let n = if sv.op == SetOp::Add {
                        cur.saturating_add(d)
                    } else {
                        cur.saturating_sub(d)
                    };
                    let mut digits = [0u8; 24];
                    let text = format_i64(n, &mut digits);
                    match store.get_mut(name.as_ref()) {
                        Some(slot) => {
                            slot.clear();
                            slot.extend_from_slice(text);
                        }
                        None => {
                            store.insert(name.into_owned(), text.to_vec());
                        }
                    }
                    return;
                }
                if sv.op == SetOp::Set {
                    let value = self.expand_in(&sv.value, starter);
                    let store = &mut self.st.stores[store_index(sv.collection)];
                    match store.get_mut(name.as_ref()) {
                        Some(slot) => *slot = value,
                        None => {
                            store.insert(name.into_owned(), value);
                        }
                    }
                    return;
                }
                let name = name.into_owned();
                let value = self.expand_in(&sv.value, starter);
                let store = &mut self.st.stores[store_index(sv.collection)];
                match sv.op {
                    SetOp::Set => {
                        store.insert(name, value);
                    }
                    SetOp::Delete => {
                        store.remove(&name);
                    }
                    SetOp::Add | SetOp::Sub => {
                        let cur = store
                            .get(&name)
                            .map(|v| crate::operator::parse_int(v))
                            .unwrap_or(0);
                        let d = crate::operator::parse_int(&value);
                        let n = if sv.op == SetOp::Add {
                            cur.saturating_add(d)
                        } else {
                            cur.saturating_sub(d)
                        };
                        store.insert(name, n.to_string().into_bytes());
                    }
                }
            }
            Action::Ctl(c) => match c {
                Ctl::RuleEngine(m) => self.st.mode = *m,
                Ctl::RuleRemoveById(r) => self.st.removed_ids.extend(r.iter().copied()),
                Ctl::RuleRemoveByTag(t) => self.st.removed_tags.push(t.clone()),
                Ctl::RuleRemoveTargetById(ids, e) => {
                    self.st.removed_targets.push((ids.clone(), e.clone()))
                }
                Ctl::RuleRemoveTargetByTag(t, e, tagged) => {
                    self.st
                        .removed_targets_by_tag
                        .push((t.clone(), e.clone(), tagged.clone()))
                }
                Ctl::RequestBodyProcessor(p) => self.st.body_processor = Some(p.clone()),
                Ctl::ForceRequestBodyVariable(b) => self.st.force_body_variable = *b,
                Ctl::RequestBodyAccess(b) => self.st.body_access = *b,
                Ctl::RequestBodyLimit(n) => self.st.body_limit = *n,
                Ctl::AuditEngine | Ctl::AuditLogParts => {}
            },
            Action::ExpireVar | Action::InitCol | Action::SetEnv => {}
        }
    }
}

/// Formats a signed number in decimal into a stack buffer.
fn format_i64(n: i64, buf: &mut [u8; 24]) -> &[u8] {
    let mut i = buf.len();
    let neg = n < 0;
    let mut m = n.unsigned_abs();
    loop {
        i -= 1;
        buf[i] = b'0' + (m % 10) as u8;
        m /= 10;
        if m == 0 {
            break;
        }
    }
    if neg {
        i -= 1;
        buf[i] = b'-';
    }
    &buf[i..]
}
