//! The variables a rule can inspect.

/// A SecLang variable (collection or scalar).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs, clippy::enum_variant_names)]
pub(crate) enum Var {
    // Collections.
    Args,
    ArgsGet,
    ArgsPost,
    ArgsNames,
    ArgsGetNames,
    ArgsPostNames,
    RequestHeaders,
    RequestHeadersNames,
    RequestCookies,
    RequestCookiesNames,
    Files,
    FilesNames,
    FilesSizes,
    FilesTmpNames,
    MultipartPartHeaders,
    ResponseHeaders,
    ResponseHeadersNames,
    Tx,
    Ip,
    Global,
    Session,
    User,
    Resource,
    Geo,
    Env,
    Xml,
    MatchedVars,
    MatchedVarsNames,
    Rule,
    // Scalars.
    ArgsCombinedSize,
    RequestUri,
    RequestUriRaw,
    RequestLine,
    RequestMethod,
    RequestProtocol,
    RequestFilename,
    RequestBasename,
    QueryString,
    RequestBody,
    RequestBodyLength,
    FilesCombinedSize,
    ReqbodyError,
    ReqbodyErrorMsg,
    ReqbodyProcessor,
    ReqbodyProcessorError,
    ResponseStatus,
    ResponseBody,
    ResponseContentType,
    ResponseContentLength,
    ResponseProtocol,
    StatusLine,
    MatchedVar,
    MatchedVarName,
    RemoteAddr,
    RemotePort,
    RemoteHost,
    RemoteUser,
    ServerName,
    ServerAddr,
    ServerPort,
    UniqueId,
    Duration,
    AuthType,
    PathInfo,
    FullRequest,
    FullRequestLength,
    InboundDataError,
    OutboundDataError,
    HighestSeverity,
    UrlencodedError,
    Webappid,
    Time,
    TimeEpoch,
    MultipartStrictError,
    MultipartUnmatchedBoundary,
    MultipartBoundaryQuoted,
    MultipartBoundaryWhitespace,
    MultipartDataBefore,
    MultipartDataAfter,
    MultipartHeaderFolding,
    MultipartLfLine,
    MultipartCrlfLfLines,
    MultipartMissingSemicolon,
    MultipartInvalidQuoting,
    MultipartInvalidPart,
    MultipartInvalidHeaderFolding,
    MultipartFileLimitExceeded,
    MultipartFilename,
    MultipartName,
}

const NAMES: &[(&str, Var)] = &[
    ("ARGS", Var::Args),
    ("ARGS_GET", Var::ArgsGet),
    ("ARGS_POST", Var::ArgsPost),
    ("ARGS_NAMES", Var::ArgsNames),
    ("ARGS_GET_NAMES", Var::ArgsGetNames),
    ("ARGS_POST_NAMES", Var::ArgsPostNames),
    ("REQUEST_HEADERS", Var::RequestHeaders),
    ("REQUEST_HEADERS_NAMES", Var::RequestHeadersNames),
    ("REQUEST_COOKIES", Var::RequestCookies),
    ("REQUEST_COOKIES_NAMES", Var::RequestCookiesNames),
    ("FILES", Var::Files),
    ("FILES_NAMES", Var::FilesNames),
    ("FILES_SIZES", Var::FilesSizes),
    ("FILES_TMPNAMES", Var::FilesTmpNames),
    ("MULTIPART_PART_HEADERS", Var::MultipartPartHeaders),
    ("RESPONSE_HEADERS", Var::ResponseHeaders),
    ("RESPONSE_HEADERS_NAMES", Var::ResponseHeadersNames),
    ("TX", Var::Tx),
    ("IP", Var::Ip),
    ("GLOBAL", Var::Global),
    ("SESSION", Var::Session),
    ("USER", Var::User),
    ("RESOURCE", Var::Resource),
    ("GEO", Var::Geo),
    ("ENV", Var::Env),
    ("XML", Var::Xml),
    ("MATCHED_VARS", Var::MatchedVars),
    ("MATCHED_VARS_NAMES", Var::MatchedVarsNames),
    ("RULE", Var::Rule),
    ("ARGS_COMBINED_SIZE", Var::ArgsCombinedSize),
    ("REQUEST_URI", Var::RequestUri),
    ("REQUEST_URI_RAW", Var::RequestUriRaw),
    ("REQUEST_LINE", Var::RequestLine),
    ("REQUEST_METHOD", Var::RequestMethod),
    ("REQUEST_PROTOCOL", Var::RequestProtocol),
    ("REQUEST_FILENAME", Var::RequestFilename),
    ("REQUEST_BASENAME", Var::RequestBasename),
    ("QUERY_STRING", Var::QueryString),
    ("REQUEST_BODY", Var::RequestBody),
    ("REQUEST_BODY_LENGTH", Var::RequestBodyLength),
    ("FILES_COMBINED_SIZE", Var::FilesCombinedSize),
    ("REQBODY_ERROR", Var::ReqbodyError),
    ("REQBODY_ERROR_MSG", Var::ReqbodyErrorMsg),
    ("REQBODY_PROCESSOR", Var::ReqbodyProcessor),
    ("REQBODY_PROCESSOR_ERROR", Var::ReqbodyProcessorError),
    ("RESPONSE_STATUS", Var::ResponseStatus),
    ("RESPONSE_BODY", Var::ResponseBody),
    ("RESPONSE_CONTENT_TYPE", Var::ResponseContentType),
    ("RESPONSE_CONTENT_LENGTH", Var::ResponseContentLength),
    ("RESPONSE_PROTOCOL", Var::ResponseProtocol),
    ("STATUS_LINE", Var::StatusLine),
    ("MATCHED_VAR", Var::MatchedVar),
    ("MATCHED_VAR_NAME", Var::MatchedVarName),
    ("REMOTE_ADDR", Var::RemoteAddr),
    ("REMOTE_PORT", Var::RemotePort),
    ("REMOTE_HOST", Var::RemoteHost),
    ("REMOTE_USER", Var::RemoteUser),
    ("SERVER_NAME", Var::ServerName),
    ("SERVER_ADDR", Var::ServerAddr),
    ("SERVER_PORT", Var::ServerPort),
    ("UNIQUE_ID", Var::UniqueId),
    ("DURATION", Var::Duration),
    ("AUTH_TYPE", Var::AuthType),
    ("PATH_INFO", Var::PathInfo),
    ("FULL_REQUEST", Var::FullRequest),
    ("FULL_REQUEST_LENGTH", Var::FullRequestLength),
    ("INBOUND_DATA_ERROR", Var::InboundDataError),
    ("OUTBOUND_DATA_ERROR", Var::OutboundDataError),
    ("HIGHEST_SEVERITY", Var::HighestSeverity),
    ("URLENCODED_ERROR", Var::UrlencodedError),
    ("WEBAPPID", Var::Webappid),
    ("TIME", Var::Time),
    ("TIME_EPOCH", Var::TimeEpoch),
    ("MULTIPART_STRICT_ERROR", Var::MultipartStrictError),
    (
        "MULTIPART_UNMATCHED_BOUNDARY",
        Var::MultipartUnmatchedBoundary,
    ),
    ("MULTIPART_BOUNDARY_QUOTED", Var::MultipartBoundaryQuoted),
    (
        "MULTIPART_BOUNDARY_WHITESPACE",
        Var::MultipartBoundaryWhitespace,
    ),
    ("MULTIPART_DATA_BEFORE", Var::MultipartDataBefore),
    ("MULTIPART_DATA_AFTER", Var::MultipartDataAfter),
    ("MULTIPART_HEADER_FOLDING", Var::MultipartHeaderFolding),
    ("MULTIPART_LF_LINE", Var::MultipartLfLine),
    ("MULTIPART_CRLF_LF_LINES", Var::MultipartCrlfLfLines),
    (
        "MULTIPART_MISSING_SEMICOLON",
        Var::MultipartMissingSemicolon,
    ),
    ("MULTIPART_INVALID_QUOTING", Var::MultipartInvalidQuoting),
    ("MULTIPART_INVALID_PART", Var::MultipartInvalidPart),
    (
        "MULTIPART_INVALID_HEADER_FOLDING",
        Var::MultipartInvalidHeaderFolding,
    ),
    (
        "MULTIPART_FILE_LIMIT_EXCEEDED",
        Var::MultipartFileLimitExceeded,
    ),
    ("MULTIPART_FILENAME", Var::MultipartFilename),
    ("MULTIPART_NAME", Var::MultipartName),
];

impl Var {
    /// Looks a variable up by name, case-insensitively.
    pub(crate) fn from_name(name: &str) -> Option<Var> {
        NAMES
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
    }

    /// The canonical name, as used in `MATCHED_VAR_NAME`.
    pub(crate) fn name(self) -> &'static str {
        NAMES
            .iter()
            .find(|(_, v)| *v == self)
            .map(|(n, _)| *n)
            .unwrap_or("UNKNOWN")
    }

    /// Whether the variable is a collection (has keys).
    pub(crate) fn is_collection(self) -> bool {
        (self as u8) <= (Var::Rule as u8)
    }

    /// Whether the variable is one of the persistent-style key/value stores
    /// that `setvar` can write.
    pub(crate) fn is_store(self) -> bool {
        matches!(
            self,
            Var::Tx
                | Var::Ip
                | Var::Global
                | Var::Session
                | Var::User
                | Var::Resource
                | Var::Geo
                | Var::Env
        )
    }
}
