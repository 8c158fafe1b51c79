//! The dashboard's files and the API's description, embedded in the binary
//! so the console works with no network beyond its own listener.

/// One embedded file.
pub struct Asset {
    pub path: &'static str,
    pub content_type: &'static str,
    pub body: &'static str,
}

/// Every file the dashboard is made of, by the path it is served at.
pub const ASSETS: [Asset; 4] = [
    Asset {
        path: "/",
        content_type: "text/html; charset=utf-8",
        body: include_str!("../assets/index.html"),
    },
    Asset {
        path: "/console.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../assets/console.js"),
    },
    Asset {
        path: "/console.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("../assets/console.css"),
    },
    Asset {
        path: "/api/v1/openapi.json",
        content_type: "application/json",
        body: include_str!("../assets/openapi.json"),
    },
];

/// The dashboard's Content-Security-Policy: its own script and style only,
/// no inline code, no framing, calls only to its own origin. A value that
/// reached the page unescaped still could not run.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The embedded file served at `path`, if any.
pub fn asset(path: &str) -> Option<&'static Asset> {
    let path = if path == "/index.html" { "/" } else { path };
    ASSETS.iter().find(|a| a.path == path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_loads_only_its_own_files_and_the_api_is_described() {
        let page = asset("/").unwrap().body;
        assert!(page.contains("console.js") && page.contains("console.css"));
        assert!(
            !page.contains("http://") && !page.contains("https://"),
            "nothing from elsewhere"
        );
        assert!(
            !page.contains("<script>"),
            "no inline script: the CSP refuses it"
        );
        let api = asset("/api/v1/openapi.json").unwrap().body;
        assert!(api.contains("\"openapi\"") && api.contains("/api/v1/bans"));
        assert!(asset("/etc/passwd").is_none());
    }
}
