//! The little XML S3 needs: escaping for answers, and reading the few request bodies
//! (`CompleteMultipartUpload`, `Delete`) as flat (element, text) events.

use quick_xml::events::Event;
use quick_xml::Reader;

use super::error::{S3Error, S3Result};

pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// One parsed element: its local name, its parent's local name, and its text (`None` at the
/// start of an element that holds other elements).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub name: String,
    pub parent: String,
    pub text: Option<String>,
}

/// Flattens a document into `Node`s in document order: one `text: None` node when an element
/// opens, one `text: Some` node for each leaf element.
pub fn parse(body: &[u8]) -> S3Result<Vec<Node>> {
    let mut reader = Reader::from_reader(body);
    let mut stack: Vec<String> = Vec::new();
    let mut out = Vec::new();
    let mut text = String::new();
    loop {
        match reader.read_event() {
            Ok(Event::Start(e)) => {
                let name = e.local_name().as_ref().to_string();
                out.push(Node {
                    name: name.clone(),
                    parent: stack.last().cloned().unwrap_or_default(),
                    text: None,
                });
                stack.push(name);
                text.clear();
            }
            Ok(Event::Empty(e)) => {
                let name = e.local_name().as_ref().to_string();
                out.push(Node {
                    name,
                    parent: stack.last().cloned().unwrap_or_default(),
                    text: Some(String::new()),
                });
            }
            Ok(Event::Text(t)) => {
                text.push_str(&t.into_inner());
            }
            Ok(Event::GeneralRef(r)) => {
                let name = r.clone().into_inner().into_owned();
                let c = match name.as_str() {
                    "amp" => "&".to_string(),
                    "lt" => "<".to_string(),
                    "gt" => ">".to_string(),
                    "quot" => "\"".to_string(),
                    "apos" => "'".to_string(),
                    n => match r.resolve_char_ref() {
                        Ok(Some(ch)) => ch.to_string(),
                        _ => {
                            return Err(S3Error::malformed_xml(format!("unknown XML entity &{n};")))
                        }
                    },
                };
                text.push_str(&c);
            }
            Ok(Event::CData(t)) => text.push_str(&t.into_inner()),
            Ok(Event::End(_)) => {
                let name = stack.pop().unwrap_or_default();
                // A leaf: the last node pushed is this element's start.
                if let Some(last) = out.last_mut() {
                    if last.name == name && last.text.is_none() {
                        last.text = Some(std::mem::take(&mut text));
                    }
                }
                text.clear();
            }
            Ok(Event::Eof) => break,
            Ok(_) => {}
            Err(e) => {
                return Err(S3Error::malformed_xml(format!(
                    "the XML body is not well-formed: {e}"
                )))
            }
        }
    }
    if !stack.is_empty() {
        return Err(S3Error::malformed_xml(
            "the XML body ends inside an element",
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes() {
        assert_eq!(escape("a<b>&\"'"), "a&lt;b&gt;&amp;&quot;&apos;");
    }

    #[test]
    fn parses_complete_upload() {
        let x = br#"<?xml version="1.0"?><CompleteMultipartUpload xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Part><ETag>"a&amp;b"</ETag><PartNumber>1</PartNumber></Part><Part><PartNumber>2</PartNumber><ETag>x</ETag></Part></CompleteMultipartUpload>"#;
        let n = parse(x).unwrap();
        let leaves: Vec<(&str, &str, &str)> = n
            .iter()
            .filter_map(|n| Some((n.parent.as_str(), n.name.as_str(), n.text.as_deref()?)))
            .collect();
        assert!(leaves.contains(&("Part", "ETag", "\"a&b\"")));
        assert!(leaves.contains(&("Part", "PartNumber", "2")));
        assert!(parse(b"<a><b></a>").is_err());
        assert!(parse(b"<a>").is_err());
    }
}
