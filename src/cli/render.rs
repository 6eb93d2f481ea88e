//! Text and HTML views of a manifest.

use std::fmt::Write as _;
use std::time::Duration;

use crate::manifest::Manifest;

/// Renders a manifest as a readable summary.
pub fn status_text(manifest: &Manifest, bucket: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "task      {}", manifest.task_id);
    let _ = writeln!(out, "status    {}", manifest.status.as_str());
    let _ = writeln!(
        out,
        "provider  code {} ({})",
        manifest.provider_code,
        manifest.provider_msg.as_deref().unwrap_or("no message")
    );
    if let Some(prompt) = prompt_text(manifest) {
        let _ = writeln!(out, "prompt    {prompt}");
    }
    let _ = writeln!(out, "updated   {}", manifest.updated_at);
    let _ = writeln!(out, "results   {}", manifest.results.len());

    for entry in &manifest.results {
        match (&entry.key, &entry.error) {
            (Some(key), None) => {
                let _ = writeln!(
                    out,
                    "  [{}] s3://{bucket}/{key}  {}  {}  sha256 {}",
                    entry.index,
                    entry.content_type.as_deref().unwrap_or("?"),
                    human_bytes(entry.bytes.unwrap_or(0)),
                    entry
                        .sha256
                        .as_deref()
                        .map(|s| &s[..s.len().min(16)])
                        .unwrap_or("?"),
                );
            }
            (_, Some(error)) => {
                let _ = writeln!(
                    out,
                    "  [{}] FAILED ({}): {}\n      source {}",
                    entry.index,
                    error.kind.as_str(),
                    error.message,
                    entry.source_url
                );
            }
            (None, None) => {
                let _ = writeln!(out, "  [{}] pending: {}", entry.index, entry.source_url);
            }
        }
    }
    out
}

/// Returns the prompt text: `prompt` of a parsed `promptJson`, or the raw string.
fn prompt_text(manifest: &Manifest) -> Option<String> {
    match manifest.prompt.as_ref()? {
        serde_json::Value::String(text) => Some(text.clone()),
        value => value
            .get("prompt")
            .and_then(|p| p.as_str())
            .map(str::to_owned)
            .or_else(|| Some(value.to_string())),
    }
}

/// `1.5 MiB` style sizes.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// Renders a standalone HTML page with the prompt and each result's presigned
/// link. `links[i]` belongs to `manifest.results[i]` and is `None` for a failed one.
pub fn gallery_html(manifest: &Manifest, links: &[Option<String>], expires: Duration) -> String {
    let title = format!("Midjourney task {}", manifest.task_id);
    let mut out = String::new();
    let _ = write!(
        out,
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"referrer\" content=\"no-referrer\">\n<title>{}</title>\n<style>\n\
         body{{font-family:system-ui,sans-serif;margin:2rem;max-width:72rem}}\n\
         .grid{{display:grid;grid-template-columns:repeat(auto-fill,minmax(16rem,1fr));gap:1rem}}\n\
         figure{{margin:0}} img,video{{width:100%;height:auto;border-radius:4px}}\n\
         .failed{{color:#a00}} code{{word-break:break-all}}\n</style>\n</head>\n<body>\n<h1>{}</h1>\n",
        escape(&title),
        escape(&title)
    );
    if let Some(prompt) = prompt_text(manifest) {
        let _ = writeln!(out, "<p><strong>Prompt:</strong> {}</p>", escape(&prompt));
    }
    let _ = writeln!(
        out,
        "<p>Status: {}. Links expire {} s after this page was written ({}).</p>\n<div class=\"grid\">",
        manifest.status.as_str(),
        expires.as_secs(),
        escape(&manifest.updated_at)
    );

    for (entry, link) in manifest.results.iter().zip(links) {
        let caption = format!(
            "#{} {}",
            entry.index,
            entry.content_type.as_deref().unwrap_or("")
        );
        match link {
            Some(link) => {
                let href = escape(link);
                let media = if entry
                    .content_type
                    .as_deref()
                    .is_some_and(|t| t.starts_with("video/"))
                {
                    format!("<video controls preload=\"metadata\" src=\"{href}\"></video>")
                } else {
                    format!(
                        "<img loading=\"lazy\" alt=\"result {}\" src=\"{href}\">",
                        entry.index
                    )
                };
                let _ = writeln!(
                    out,
                    "<figure><a href=\"{href}\">{media}</a><figcaption>{} ({})</figcaption></figure>",
                    escape(&caption),
                    human_bytes(entry.bytes.unwrap_or(0))
                );
            }
            None => {
                let message = entry
                    .error
                    .as_ref()
                    .map(|e| e.message.as_str())
                    .unwrap_or("not archived");
                let _ = writeln!(
                    out,
                    "<figure class=\"failed\"><figcaption>{}: {}<br><code>{}</code></figcaption></figure>",
                    escape(&caption),
                    escape(message),
                    escape(&entry.source_url)
                );
            }
        }
    }
    out.push_str("</div>\n</body>\n</html>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{ArchiveStatus, FailureKind, ResultEntry};

    fn manifest() -> Manifest {
        Manifest {
            task_id: "mj_1".into(),
            status: ArchiveStatus::CompleteWithErrors,
            provider_code: 200,
            provider_msg: Some("success".into()),
            prompt: Some(serde_json::json!({"prompt": "a <cat> & \"dog\""})),
            source: "callback".into(),
            results: vec![
                ResultEntry {
                    index: 0,
                    source_url: "https://h/0.png".into(),
                    key: Some("mj/mj_1/0.png".into()),
                    content_type: Some("image/png".into()),
                    bytes: Some(2048),
                    sha256: Some("ab".repeat(32)),
                    error: None,
                },
                ResultEntry::failed(
                    1,
                    "https://h/x?a=1&b=<2>",
                    FailureKind::NotMedia,
                    "Content-Type text/html".into(),
                ),
            ],
            updated_at: "2026-12-04T00:00:00Z".into(),
            archiver_version: "0.1.0".into(),
        }
    }

    #[test]
    fn status_lists_each_result() {
        let text = status_text(&manifest(), "bucket-1");

        assert!(text.contains("prompt    a <cat> & \"dog\""), "{text}");
        assert!(
            text.contains(
                "[0] s3://bucket-1/mj/mj_1/0.png  image/png  2.0 KiB  sha256 abababababababab"
            ),
            "{text}"
        );
        assert!(
            text.contains("[1] FAILED (not_media): Content-Type text/html"),
            "{text}"
        );
        assert!(text.contains("status    complete_with_errors"), "{text}");
    }

    #[test]
    fn gallery_escapes_everything() {
        let html = gallery_html(
            &manifest(),
            &[Some("https://s3/x?X-Amz-Signature=1&a=2".into()), None],
            Duration::from_secs(60),
        );

        assert!(html.contains("a &lt;cat&gt; &amp; &quot;dog&quot;"));
        assert!(html.contains("src=\"https://s3/x?X-Amz-Signature=1&amp;a=2\""));
        assert!(html.contains("https://h/x?a=1&amp;b=&lt;2&gt;"));
        assert!(!html.contains("<cat>"));
    }

    #[test]
    fn human_sizes() {
        assert_eq!(human_bytes(10), "10 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(64 * 1024 * 1024), "64.0 MiB");
    }
}
