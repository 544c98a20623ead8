//! The web console's files (docs/console.md): `/` and its assets answer 200 with their content
//! types and revalidation headers, a browser's copy is confirmed with a 304, the page may load
//! nothing from elsewhere, and an unknown asset is a 404.

use stampede_tests::http::exchange;
use stampede_tests::Server;

fn header<'a>(headers: &'a [(String, String)], name: &str) -> &'a str {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no {name} header in {headers:?}"))
}

#[tokio::test]
async fn the_page_and_its_assets_are_served_with_their_types() {
    let server = Server::start();
    let files = [
        (
            "/",
            "text/html; charset=utf-8",
            "<title>Stampede console</title>",
        ),
        ("/console/app.js", "text/javascript; charset=utf-8", "/api"),
        ("/console/app.css", "text/css; charset=utf-8", ":root"),
        ("/console/favicon.svg", "image/svg+xml", "<svg"),
    ];
    for (path, content_type, needle) in files {
        let (status, headers, body) = exchange(server.http_addr, "GET", path, &[], "").await;
        assert_eq!(status, 200, "{path}");
        assert_eq!(header(&headers, "content-type"), content_type, "{path}");
        assert_eq!(header(&headers, "cache-control"), "no-cache", "{path}");
        assert_eq!(header(&headers, "x-content-type-options"), "nosniff");
        assert!(body.contains(needle), "{path}: {body}");

        // The validator it gave confirms the browser's copy without sending it again.
        let etag = header(&headers, "etag").to_owned();
        let (status, _, body) = exchange(
            server.http_addr,
            "GET",
            path,
            &[("If-None-Match", &etag)],
            "",
        )
        .await;
        assert_eq!((status, body.as_str()), (304, ""), "{path}");
    }

    let (_, headers, _) = exchange(server.http_addr, "GET", "/", &[], "").await;
    let csp = header(&headers, "content-security-policy");
    assert!(csp.contains("default-src 'none'"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");

    let (status, headers, _) =
        exchange(server.http_addr, "GET", "/console/secrets.txt", &[], "").await;
    assert_eq!(status, 404);
    assert!(header(&headers, "content-type").starts_with("text/plain"));
}
