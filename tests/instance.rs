//! Base URL validation.

use peertube_session::error::UrlError;
use peertube_session::{Error, Instance};

fn rejected(url: &str) -> UrlError {
    match Instance::new(url) {
        Err(Error::InvalidUrl(reason)) => reason,
        other => panic!("{url}: {other:?}"),
    }
}

#[test]
fn https_urls_are_accepted_with_or_without_trailing_slash() {
    for url in [
        "https://video.example.org",
        "https://video.example.org/",
        " https://video.example.org ",
    ] {
        assert_eq!(
            Instance::new(url).unwrap().base_url(),
            "https://video.example.org"
        );
    }
    let instance = Instance::new("https://video.example.org:8443").unwrap();
    assert_eq!(instance.authority(), "video.example.org:8443");
}

#[test]
fn a_path_prefix_is_kept() {
    let instance = Instance::new("https://example.org/tube/peertube/").unwrap();
    assert_eq!(instance.base_url(), "https://example.org/tube/peertube");
    assert_eq!(
        instance.uri("api/v1/users/me?x=1").unwrap(),
        "https://example.org/tube/peertube/api/v1/users/me?x=1"
    );
}

#[test]
fn plain_http_is_only_for_loopback_unless_opted_in() {
    for url in [
        "http://127.0.0.1:9000",
        "http://127.5.6.7",
        "http://localhost:9000",
        "http://LOCALHOST",
        "http://[::1]:9000",
    ] {
        assert!(Instance::new(url).is_ok(), "{url}");
    }
    for url in [
        "http://video.example.org",
        "http://10.0.0.1",
        "http://128.0.0.1",
        "http://localhost.example.org",
    ] {
        assert_eq!(rejected(url), UrlError::PlainHttpNotAllowed, "{url}");
    }
    let instance = Instance::new_allowing_http("http://video.example.org").unwrap();
    assert!(instance.plain_http_allowed());
}

#[test]
fn malformed_urls_say_what_is_wrong() {
    assert_eq!(rejected("video.example.org"), UrlError::Malformed);
    assert_eq!(rejected(""), UrlError::Malformed);
    assert_eq!(rejected("https://"), UrlError::Malformed);
    assert_eq!(
        rejected("ftp://video.example.org"),
        UrlError::UnsupportedScheme
    );
    assert_eq!(
        rejected("https://user:pw@video.example.org"),
        UrlError::HasUserinfo
    );
    assert_eq!(
        rejected("https://video.example.org/?a=b"),
        UrlError::HasQuery
    );
    assert_eq!(
        rejected("https://video.example.org/#top"),
        UrlError::HasFragment
    );
    assert_eq!(
        rejected("https://video.example.org/a/../b"),
        UrlError::BadPath
    );
    assert_eq!(rejected("https://video.example.org//a"), UrlError::BadPath);
}

#[test]
fn url_errors_do_not_repeat_the_url() {
    let error = Instance::new("https://user:hunter2@video.example.org").unwrap_err();
    assert!(!error.to_string().contains("hunter2"));
    assert!(!format!("{error:?}").contains("hunter2"));
}

#[test]
fn same_origin_compares_scheme_host_and_port() {
    let instance = Instance::new("https://video.example.org").unwrap();
    let same = |uri: &str| instance.is_same_origin(&uri.parse().unwrap());
    assert!(same("https://video.example.org/api"));
    assert!(same("https://Video.Example.org:443/api"));
    assert!(!same("https://video.example.org.evil.net/api"));
    assert!(!same("http://video.example.org/api"));
}

#[test]
fn ports_outside_1_to_65535_and_empty_ports_are_refused() {
    for url in [
        "http://127.0.0.1:99999",
        "http://127.0.0.1:65536",
        "http://127.0.0.1:0",
        "http://127.0.0.1:",
        "https://video.example.org:",
    ] {
        assert_eq!(rejected(url), UrlError::BadPort, "{url}");
    }
    assert_eq!(
        Instance::new("http://127.0.0.1:65535").unwrap().authority(),
        "127.0.0.1:65535"
    );
    // The out-of-range port is not mistaken for the default one.
    assert!(Instance::new("https://video.example.org:99999").is_err());
}

#[test]
fn dot_segments_plain_or_encoded_are_refused_in_the_base_path_and_in_uris() {
    for url in [
        "https://example.org/%2e%2e/x",
        "https://example.org/a/%2E",
        "https://example.org/.%2e",
    ] {
        assert_eq!(rejected(url), UrlError::BadPath, "{url}");
    }
    let instance = Instance::new("https://example.org/peertube").unwrap();
    for path in [
        "/../../etc",
        "/api/./v1",
        "/api/%2e%2e/admin",
        "/api/v1/%2E",
        "/a#b",
        "/api/v1/videos?x=1#frag",
    ] {
        assert_eq!(
            instance.uri(path).unwrap_err(),
            Error::InvalidUrl(UrlError::BadPath),
            "{path}"
        );
    }
    // Dots inside a segment, and in the query, are ordinary characters.
    assert_eq!(
        instance
            .uri("/api/v1/videos/a..b?q=..")
            .unwrap()
            .to_string(),
        "https://example.org/peertube/api/v1/videos/a..b?q=.."
    );
    // Three dots, plain or encoded, and a cut-short escape name a segment like any other.
    for path in [
        "/api/v1/videos/...",
        "/api/v1/%2e%2E%2e",
        "/api/v1/%2",
        "/api/v1/.%2",
    ] {
        assert!(instance.uri(path).is_ok(), "{path}");
    }
}

#[test]
fn a_token_goes_only_under_the_instances_path_prefix() {
    let instance = Instance::new("https://example.org/peertube").unwrap();
    let owns = |uri: &str| instance.contains(&uri.parse().unwrap());
    assert!(owns("https://example.org/peertube"));
    assert!(owns("https://example.org/peertube/"));
    assert!(owns("https://example.org/peertube/api/v1/users/me?x=1"));
    assert!(owns("https://EXAMPLE.org:443/peertube/api"));
    // Dots and escapes that make no dot segment.
    assert!(owns("https://example.org/peertube/static/video.mp4"));
    assert!(owns("https://example.org/peertube/a%20b/.well-known"));
    assert!(!owns("https://example.org/"));
    assert!(!owns("https://example.org/other-app/api"));
    assert!(!owns("https://example.org/peertube-evil/api"));
    assert!(!owns("https://example.org/peertube/api/../../other-app"));
    assert!(!owns("https://example.org/peertube/%2e%2E/other-app"));
    assert!(!owns("https://other.example.org/peertube/api"));
    // The origin alone still matches: that is all `is_same_origin` says.
    assert!(instance.is_same_origin(&"https://example.org/other-app".parse().unwrap()));

    let root = Instance::new("https://example.org").unwrap();
    assert!(root.contains(&"https://example.org/anything".parse().unwrap()));
    assert!(!root.contains(&"https://example.org/api/../x".parse().unwrap()));
}

#[test]
fn an_already_prefixed_path_is_not_prefixed_twice() {
    let instance = Instance::new("https://example.org/peertube").unwrap();
    for path in ["/peertube/api/v1/config", "/api/v1/config", "api/v1/config"] {
        assert_eq!(
            instance.uri(path).unwrap().path(),
            "/peertube/api/v1/config",
            "{path}"
        );
    }
    // A path that only begins with the same letters is not under the prefix.
    assert_eq!(
        instance.uri("/peertubex/api").unwrap().path(),
        "/peertube/peertubex/api"
    );
}

#[test]
fn the_host_is_lower_cased_as_peertube_compares_it() {
    let instance = Instance::new("HTTPS://Video.EXAMPLE.org:8443/PeerTube").unwrap();
    assert_eq!(
        instance.base_url(),
        "https://video.example.org:8443/PeerTube"
    );
    assert_eq!(instance.authority(), "video.example.org:8443");
}

#[test]
fn a_default_port_written_out_is_the_same_origin_as_none() {
    let http = Instance::new("http://127.0.0.1:80").unwrap();
    assert!(http.is_same_origin(&"http://127.0.0.1/x".parse().unwrap()));
    assert!(!http.is_same_origin(&"http://127.0.0.1:8080/x".parse().unwrap()));
    let https = Instance::new("https://video.example.org").unwrap();
    assert!(https.is_same_origin(&"https://video.example.org:443/x".parse().unwrap()));
    assert!(!https.is_same_origin(&"https://video.example.org:80/x".parse().unwrap()));
    assert!(!https.is_same_origin(&"http://video.example.org:443/x".parse().unwrap()));
}

#[test]
fn debug_shows_the_base_url() {
    let instance = Instance::new("https://example.org/peertube/").unwrap();
    assert_eq!(
        format!("{instance:?}"),
        r#"Instance("https://example.org/peertube")"#
    );
}
