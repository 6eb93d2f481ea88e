//! Content types accepted for results, and the file extension of each.
//!
//! Only `image/*` and `video/*` are archived, so a `text/html` error page is
//! never stored as an image. `application/octet-stream` or a missing type is
//! decided by the body's magic bytes.

/// How many leading bytes [`sniff`] needs to decide.
pub const SNIFF_LEN: usize = 64;

/// A media type to store a result under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaType {
    /// The MIME type without parameters, lowercase, e.g. `image/png`.
    pub mime: String,
    /// File extension for the key, e.g. `png`.
    pub ext: String,
}

/// Classification of a `Content-Type` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Declared {
    /// An image or video type.
    Media { mime: String },
    /// No type or `application/octet-stream`: decide by the magic bytes.
    Unknown,
    /// Any other type; the result is rejected.
    Rejected { mime: String },
}

/// Classifies a `Content-Type` header value.
pub fn classify(content_type: Option<&str>) -> Declared {
    let Some(value) = content_type else {
        return Declared::Unknown;
    };
    let mime = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();

    if mime.is_empty() || mime == "application/octet-stream" || mime == "binary/octet-stream" {
        Declared::Unknown
    } else if is_media(&mime) {
        Declared::Media { mime }
    } else {
        Declared::Rejected { mime }
    }
}

/// Returns whether a type is archived. SVG is excluded: it is a document that
/// can carry scripts, and the provider's results are raster images and videos.
fn is_media(mime: &str) -> bool {
    if mime == "image/svg+xml" {
        return false;
    }
    let valid_token = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'+' | b'-'))
    };
    match mime.split_once('/') {
        Some(("image" | "video", subtype)) => valid_token(subtype),
        _ => false,
    }
}

/// Extension for a known MIME type.
fn ext_for_mime(mime: &str) -> Option<&'static str> {
    Some(match mime {
        "image/jpeg" | "image/jpg" | "image/pjpeg" => "jpeg",
        "image/png" => "png",
        "image/webp" => "webp",
        "image/gif" => "gif",
        "image/avif" => "avif",
        "image/heic" => "heic",
        "image/bmp" => "bmp",
        "image/tiff" => "tiff",
        "video/mp4" => "mp4",
        "video/webm" => "webm",
        "video/quicktime" => "mov",
        _ => return None,
    })
}

/// Returns the last path segment's extension, if it is a short alphanumeric word.
pub fn ext_from_url(url: &url::Url) -> Option<String> {
    let segment = url.path_segments()?.next_back()?;
    let (_, ext) = segment.rsplit_once('.')?;
    let valid = (1..=5).contains(&ext.len()) && ext.bytes().all(|b| b.is_ascii_alphanumeric());
    valid.then(|| ext.to_ascii_lowercase())
}

/// Detects an image or video type from the first bytes of a body.
pub fn sniff(head: &[u8]) -> Option<MediaType> {
    let kind = infer::get(head)?;
    let mime = kind.mime_type();
    if !is_media(mime) {
        return None;
    }
    let ext = ext_for_mime(mime).unwrap_or(kind.extension());
    Some(MediaType {
        mime: mime.to_owned(),
        ext: ext.to_owned(),
    })
}

/// Decides the stored type and extension: the extension comes from the
/// Content-Type, else from the URL's extension, else from the magic bytes.
/// Returns `None` when the body is not an image or video.
///
/// NOTE: a declared `image/*` or `video/*` type is trusted without checking
/// the magic bytes, so a source that labels another body `image/png` is
/// archived as a PNG.
pub fn resolve(declared: &Declared, url: &url::Url, head: &[u8]) -> Option<MediaType> {
    match declared {
        Declared::Media { mime } => {
            let ext = ext_for_mime(mime)
                .map(str::to_owned)
                .or_else(|| ext_from_url(url))
                .or_else(|| sniff(head).map(|m| m.ext))
                .unwrap_or_else(|| "bin".to_owned());
            Some(MediaType {
                mime: mime.clone(),
                ext,
            })
        }
        Declared::Unknown => sniff(head),
        Declared::Rejected { .. } => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";
    const JPEG: &[u8] = b"\xff\xd8\xff\xe0\0\x10JFIF\0";

    fn url(s: &str) -> url::Url {
        url::Url::parse(s).unwrap()
    }

    #[test]
    fn classify_variants() {
        assert_eq!(
            classify(Some("image/JPEG; charset=binary")),
            Declared::Media {
                mime: "image/jpeg".into()
            }
        );
        assert_eq!(classify(None), Declared::Unknown);
        assert_eq!(
            classify(Some("application/octet-stream")),
            Declared::Unknown
        );
        assert_eq!(
            classify(Some("text/html; charset=utf-8")),
            Declared::Rejected {
                mime: "text/html".into()
            }
        );
        assert_eq!(
            classify(Some("image/")),
            Declared::Rejected {
                mime: "image/".into()
            }
        );
        assert_eq!(
            classify(Some("image/svg+xml")),
            Declared::Rejected {
                mime: "image/svg+xml".into()
            }
        );
    }

    #[test]
    fn extension_precedence() {
        let media = |mime: &str| Declared::Media { mime: mime.into() };

        assert_eq!(
            resolve(&media("image/jpeg"), &url("https://h/x.jpg"), JPEG)
                .unwrap()
                .ext,
            "jpeg"
        );
        assert_eq!(
            resolve(&media("image/x-custom"), &url("https://h/x.ICO"), PNG)
                .unwrap()
                .ext,
            "ico"
        );
        assert_eq!(
            resolve(&media("image/x-custom"), &url("https://h/x"), PNG)
                .unwrap()
                .ext,
            "png"
        );
        assert_eq!(
            resolve(&media("image/x-custom"), &url("https://h/x"), b"??")
                .unwrap()
                .ext,
            "bin"
        );
    }

    #[test]
    fn unknown_type_sniffed() {
        let found = resolve(&Declared::Unknown, &url("https://h/x.bin"), PNG).unwrap();

        assert_eq!(
            found,
            MediaType {
                mime: "image/png".into(),
                ext: "png".into()
            }
        );
        assert_eq!(
            resolve(&Declared::Unknown, &url("https://h/x.png"), b"<html>"),
            None
        );
    }

    #[test]
    fn url_extension_rules() {
        assert_eq!(
            ext_from_url(&url("https://h/a/x_0_0.jpeg?sig=1")),
            Some("jpeg".into())
        );
        assert_eq!(ext_from_url(&url("https://h/a/x")), None);
        assert_eq!(ext_from_url(&url("https://h/a/x.toolongext")), None);
        assert_eq!(ext_from_url(&url("https://h/a/x.p%20g")), None);
    }
}
