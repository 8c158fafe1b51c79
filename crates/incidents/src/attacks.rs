//! Attack types and the CAPEC entries they map to, for reports and exports.

/// What the exports and reports say about one attack type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttackPatternInfo {
    /// The name in words (`SQL injection`).
    pub name: &'static str,
    /// The CAPEC entry: id (`CAPEC-66`) and its title.
    pub capec: Option<(&'static str, &'static str)>,
    /// One sentence for the STIX attack-pattern's description.
    pub description: &'static str,
}

/// The attack pattern for an attack type as the WAF tags it (`sqli`,
/// `attack-sqli`, `xss`, ...) or an incident kind that is an attack
/// (`flood`, `credential_stuffing`). Unknown types get their key as the name
/// and no CAPEC entry.
pub fn attack_pattern(key: &str) -> AttackPatternInfo {
    let normal = key.trim().to_ascii_lowercase().replace('_', "-");
    let normal = normal.strip_prefix("attack-").unwrap_or(&normal);
    let (name, capec, description): (&'static str, Option<(&'static str, &'static str)>, &'static str) = match normal {
        "sqli" | "sql-injection" => ("SQL injection", Some(("CAPEC-66", "SQL Injection")), "SQL fragments in request parameters, aimed at reading or changing the application's database."),
        "xss" | "cross-site-scripting" => ("cross-site scripting", Some(("CAPEC-63", "Cross-Site Scripting (XSS)")), "Script in request parameters, aimed at running in other visitors' browsers."),
        "rce" | "command-injection" | "cmdi" | "os-command-injection" => ("remote command execution", Some(("CAPEC-88", "OS Command Injection")), "Shell commands in request parameters, aimed at running on the server."),
        "lfi" | "path-traversal" | "traversal" => ("local file inclusion and path traversal", Some(("CAPEC-126", "Path Traversal")), "Paths such as ../../etc/passwd in requests, aimed at reading files on the server."),
        "rfi" => ("remote file inclusion", Some(("CAPEC-193", "PHP Remote File Inclusion")), "URLs of attacker-controlled code in request parameters, aimed at having the server include and run it."),
        "php" | "nodejs" | "code-injection" => ("code injection", Some(("CAPEC-242", "Code Injection")), "Application-language code in request parameters, aimed at running in the application."),
        "java" | "deserialization" | "deserialisation" => ("object injection", Some(("CAPEC-586", "Object Injection")), "Serialised objects or expression-language payloads aimed at the application's runtime."),
        "fixation" | "session-fixation" => ("session fixation", Some(("CAPEC-61", "Session Fixation")), "Requests that try to set a visitor's session identifier."),
        "protocol" | "request-smuggling" | "http-request-smuggling" => ("HTTP protocol attack", Some(("CAPEC-33", "HTTP Request Smuggling")), "Malformed or ambiguous HTTP aimed at desynchronising the gateway and the application."),
        "flood" | "dos" | "http-flood" => ("HTTP flood", Some(("CAPEC-125", "Flooding")), "More requests than the site can serve, aimed at taking it offline."),
        "credential-stuffing" => ("credential stuffing", Some(("CAPEC-600", "Credential Stuffing")), "Logins with username and password pairs leaked from other sites."),
        "brute-force" => ("password brute force", Some(("CAPEC-49", "Password Brute Forcing")), "Many passwords tried against the same accounts."),
        "scanner" | "reputation-scanner" | "scan" => ("vulnerability scanning", Some(("CAPEC-169", "Footprinting")), "Automated probing for known weaknesses."),
        "generic" | "injection-generic" | "injection" => ("generic injection", Some(("CAPEC-152", "Inject Unexpected Items")), "Payloads that match injection rules without a more specific type."),
        _ => ("", None, "An attack type the gateway's WAF rules tagged."),
    };
    // An unknown type's key is printed beside its name by the reports.
    AttackPatternInfo {
        name: if name.is_empty() {
            "other attack type"
        } else {
            name
        },
        capec,
        description,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attack_types_map_to_capec() {
        assert_eq!(attack_pattern("sqli").capec.unwrap().0, "CAPEC-66");
        assert_eq!(attack_pattern("attack-xss").capec.unwrap().0, "CAPEC-63");
        assert_eq!(
            attack_pattern("credential_stuffing").capec.unwrap().0,
            "CAPEC-600"
        );
        assert_eq!(attack_pattern("flood").capec.unwrap().0, "CAPEC-125");
        assert!(attack_pattern("something-new").capec.is_none());
    }
}
