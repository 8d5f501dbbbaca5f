//! The flat XML WeChat speaks: `<xml><Field>value</Field>...</xml>`.

use std::collections::BTreeMap;

use quick_xml::escape::resolve_predefined_entity;
use quick_xml::events::Event;

use crate::error::{Error, Result};

/// Deepest nesting accepted below `<xml>`. WeChat's deepest message (`SendPicsInfo` >
/// `PicList` > `item` > `PicMd5Sum`) is five levels; anything far deeper is an attack.
pub(crate) const MAX_DEPTH: usize = 16;
/// Most elements accepted in one message (WeChat sends a few dozen at most).
pub(crate) const MAX_ELEMENTS: usize = 1024;

/// The child elements of `<xml>` by name, with their text (CDATA and entities resolved).
///
/// The document is read as a stream, never as a tree, so its cost is bounded by its length:
/// nesting deeper than [`MAX_DEPTH`] or more than [`MAX_ELEMENTS`] elements is refused as soon
/// as the parser reaches it, before anything else is read. Nested elements (the pictures of a
/// `pic_photo_or_album` event) count for the limits but give no field of their own.
pub(crate) fn fields(xml: &str) -> Result<BTreeMap<String, String>> {
    let malformed =
        |e: &dyn std::fmt::Display| Error::invalid(format!("malformed WeChat XML: {e}"));
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut out = BTreeMap::new();
    // Depth 0: outside `<xml>`; 1: inside it; 2: inside one of its fields.
    let mut depth = 0usize;
    let mut elements = 0usize;
    let mut seen_root = false;
    let mut field: Option<(String, String)> = None;
    loop {
        let event = reader.read_event().map_err(|e| malformed(&e))?;
        let empty = matches!(event, Event::Empty(_));
        match event {
            Event::Start(start) | Event::Empty(start) => {
                elements += 1;
                if elements > MAX_ELEMENTS {
                    return Err(Error::invalid(format!(
                        "WeChat XML has more than {MAX_ELEMENTS} elements"
                    )));
                }
                let name = std::str::from_utf8(start.local_name().into_inner())
                    .map_err(|e| malformed(&e))?
                    .to_owned();
                match depth {
                    0 if seen_root => return Err(malformed(&"a second root element")),
                    0 if name != "xml" => {
                        return Err(Error::invalid("WeChat XML must have an <xml> root"));
                    }
                    0 => seen_root = true,
                    1 if empty => {
                        out.insert(name, String::new());
                    }
                    1 => field = Some((name, String::new())),
                    _ => {}
                }
                if !empty {
                    depth += 1;
                    if depth > MAX_DEPTH {
                        return Err(Error::invalid(format!(
                            "WeChat XML nests deeper than {MAX_DEPTH} levels"
                        )));
                    }
                }
            }
            Event::End(_) => {
                depth -= 1;
                if depth == 1
                    && let Some((name, text)) = field.take()
                {
                    out.insert(name, text.trim().to_owned());
                }
            }
            Event::Text(text) if depth == 2 => {
                if let Some((_, buf)) = field.as_mut() {
                    buf.push_str(&text.decode().map_err(|e| malformed(&e))?);
                }
            }
            Event::CData(text) if depth == 2 => {
                if let Some((_, buf)) = field.as_mut() {
                    buf.push_str(&text.decode().map_err(|e| malformed(&e))?);
                }
            }
            Event::GeneralRef(entity) => {
                let resolved = match entity.resolve_char_ref().map_err(|e| malformed(&e))? {
                    Some(c) => c.to_string(),
                    None => {
                        let name = entity.decode().map_err(|e| malformed(&e))?;
                        resolve_predefined_entity(&name)
                            .ok_or_else(|| malformed(&format!("unknown entity &{name};")))?
                            .to_owned()
                    }
                };
                if depth == 2
                    && let Some((_, buf)) = field.as_mut()
                {
                    buf.push_str(&resolved);
                }
            }
            Event::DocType(_) => return Err(Error::invalid("WeChat XML may not declare a DTD")),
            Event::Eof => break,
            _ => {}
        }
    }
    if !seen_root || depth != 0 {
        return Err(malformed(&"the document ends inside an element"));
    }
    Ok(out)
}

/// Text made safe inside `<![CDATA[...]]>`: a `]]>` in it is split across two sections.
pub(crate) fn cdata_safe(text: &str) -> String {
    text.replace("]]>", "]]]]><![CDATA[>")
}

/// A passive text reply: sent back in the HTTP answer to the message from `to` (an openid),
/// written by `from` (the official account's id, the `ToUserName` of the inbound message).
pub fn text_reply(to: &str, from: &str, create_time: i64, text: &str) -> String {
    format!(
        "<xml><ToUserName><![CDATA[{}]]></ToUserName><FromUserName><![CDATA[{}]]></FromUserName><CreateTime>{create_time}</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[{}]]></Content></xml>",
        cdata_safe(to),
        cdata_safe(from),
        cdata_safe(text)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_read_cdata_and_plain_text() {
        let f = fields(
            "<xml><ToUserName><![CDATA[gh_1]]></ToUserName><CreateTime>1348831860</CreateTime>\
             <Content><![CDATA[a < b]]></Content></xml>",
        )
        .unwrap();
        assert_eq!(f["ToUserName"], "gh_1");
        assert_eq!(f["CreateTime"], "1348831860");
        assert_eq!(f["Content"], "a < b");
    }

    #[test]
    fn replies_survive_cdata_terminators() {
        let xml = text_reply("o1", "gh_1", 1, "x ]]> y");
        assert_eq!(fields(&xml).unwrap()["Content"], "x ]]> y");
    }

    #[test]
    fn malformed_xml_is_refused_with_a_reason() {
        assert!(matches!(
            fields("<xml><a></xml>"),
            Err(Error::InvalidInput { .. })
        ));
        assert!(matches!(fields("<root/>"), Err(Error::InvalidInput { .. })));
        assert!(matches!(fields(""), Err(Error::InvalidInput { .. })));
        assert!(matches!(
            fields("<xml/><xml/>"),
            Err(Error::InvalidInput { .. })
        ));
        assert!(matches!(
            fields("<!DOCTYPE x [<!ENTITY a \"b\">]><xml><A>&a;</A></xml>"),
            Err(Error::InvalidInput { .. })
        ));
    }

    #[test]
    fn entities_and_character_references_are_resolved() {
        let f = fields("<xml><A>a &amp; b &#x4e2d;&#25991;</A><B/></xml>").unwrap();
        assert_eq!(f["A"], "a & b 中文");
        assert_eq!(f["B"], "");
    }

    #[test]
    fn nested_fields_count_but_give_no_text() {
        let f = fields(
            "<xml><Event>pic_photo_or_album</Event><SendPicsInfo><Count>1</Count>\
             <PicList><item><PicMd5Sum>abc</PicMd5Sum></item></PicList></SendPicsInfo></xml>",
        )
        .unwrap();
        assert_eq!(f["Event"], "pic_photo_or_album");
        assert_eq!(f["SendPicsInfo"], "");
    }

    /// The live defect of issue 13: 4,000 nested elements overflowed a worker's stack and
    /// aborted the server. Run on a thread with a small stack, so a recursive parser would crash
    /// this test instead of passing.
    #[test]
    fn deep_nesting_is_refused_without_recursion() {
        let handle = std::thread::Builder::new()
            .stack_size(64 * 1024)
            .spawn(|| {
                let depth = 100_000;
                let xml = format!("<xml>{}{}</xml>", "<a>".repeat(depth), "</a>".repeat(depth));
                fields(&xml)
            })
            .unwrap();
        let err = handle
            .join()
            .expect("the parser must not overflow")
            .unwrap_err();
        assert!(err.to_string().contains("deeper"), "{err}");
        let wide = format!("<xml>{}</xml>", "<a/>".repeat(MAX_ELEMENTS + 1));
        assert!(fields(&wide).unwrap_err().to_string().contains("elements"));
        let at_limit = format!(
            "<xml>{}{}</xml>",
            "<a>".repeat(MAX_DEPTH - 1),
            "</a>".repeat(MAX_DEPTH - 1)
        );
        assert!(fields(&at_limit).is_ok());
    }
}
