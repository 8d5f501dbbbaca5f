//! The flat XML WeChat speaks: `<xml><Field>value</Field>...</xml>`.

use std::collections::BTreeMap;

use crate::error::{Error, Result};

/// The child elements of `<xml>` by name, with their text (CDATA included).
pub(crate) fn fields(xml: &str) -> Result<BTreeMap<String, String>> {
    let doc = roxmltree::Document::parse(xml)
        .map_err(|e| Error::invalid(format!("malformed WeChat XML: {e}")))?;
    let root = doc.root_element();
    if root.tag_name().name() != "xml" {
        return Err(Error::invalid("WeChat XML must have an <xml> root"));
    }
    Ok(root
        .children()
        .filter(|n| n.is_element())
        .map(|n| {
            let text: String = n
                .children()
                .filter(|c| c.is_text())
                .filter_map(|c| c.text())
                .collect();
            (n.tag_name().name().to_owned(), text.trim().to_owned())
        })
        .collect())
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
    }
}
