//! Topic names and filters: Paho's `topic_matches_sub` and the validation used when sending.

use crate::Error;

/// True when the topic name `topic` matches the subscription filter `sub`, with exactly the
/// semantics of Paho Python's `topic_matches_sub`:
///
/// - `+` matches one whole level, including an empty one;
/// - `#` (as the last level) matches any number of levels, including none, so `a/#` matches
///   `a`;
/// - a topic starting with `$` is not matched by a filter whose first level is `+` or `#`;
/// - any other level matches literally.
pub fn topic_matches_sub(sub: &str, topic: &str) -> bool {
    let normal = !topic.starts_with('$');
    let sub: Vec<&str> = sub.split('/').collect();
    let mut levels = topic.split('/');
    let mut j = 0usize;
    let mut i = 0usize;
    loop {
        let part = levels.next();
        let level = sub.get(j).copied();
        // A `#` child at this node matches the rest of the topic (including nothing), if it
        // is the last level of the filter.
        if level == Some("#") && j + 1 == sub.len() && (normal || i > 0) {
            return true;
        }
        match (part, level) {
            (None, _) => return j == sub.len(),
            (Some(_), None) => return false,
            (Some(p), Some(l)) => {
                if !(l == p || (l == "+" && (normal || i > 0))) {
                    return false;
                }
            }
        }
        i += 1;
        j += 1;
    }
}

/// The filter a shared subscription matches: `a/+` for `$share/group/a/+` (MQTT 5.0 4.8.2),
/// the filter itself otherwise. Messages of a shared subscription arrive with their topic,
/// never with the `$share/<group>/` prefix, so `message_callback_add` matches them with this
/// (Paho Python's #472 and Paho Java match the prefix and never call such a callback).
pub(crate) fn shared_filter(sub: &str) -> &str {
    sub.strip_prefix("$share/")
        .and_then(|rest| rest.split_once('/'))
        .map_or(sub, |(_group, filter)| filter)
}

fn check_common(s: &str, what: &str) -> crate::Result<()> {
    if s.is_empty() {
        return Err(Error::InvalidArgument(format!("the {what} is empty")));
    }
    if s.len() > 65_535 {
        return Err(Error::InvalidArgument(format!(
            "the {what} is {} bytes long; at most 65535 bytes are allowed",
            s.len()
        )));
    }
    if s.as_bytes().contains(&0) {
        return Err(Error::InvalidArgument(format!(
            "the {what} {s:?} contains the null character U+0000"
        )));
    }
    Ok(())
}

/// Checks a topic name to publish to: non-empty, no wildcard (`+`, `#`), no U+0000, at most
/// 65535 bytes.
pub(crate) fn validate_topic_name(t: &str) -> crate::Result<()> {
    check_common(t, "topic name")?;
    if t.contains(['+', '#']) {
        return Err(Error::InvalidArgument(format!(
            "the topic name {t:?} contains a wildcard (+ or #); wildcards are only allowed in \
             subscriptions"
        )));
    }
    Ok(())
}

/// Checks a topic filter to subscribe to: non-empty, `#` only as the whole last level, `+`
/// only as a whole level, no U+0000, at most 65535 bytes.
pub(crate) fn validate_topic_filter(f: &str) -> crate::Result<()> {
    check_common(f, "topic filter")?;
    let mut levels = f.split('/').peekable();
    while let Some(level) = levels.next() {
        if level.contains('#') && (level != "#" || levels.peek().is_some()) {
            return Err(Error::InvalidArgument(format!(
                "the topic filter {f:?} is invalid: '#' must be the whole last level"
            )));
        }
        if level.contains('+') && level != "+" {
            return Err(Error::InvalidArgument(format!(
                "the topic filter {f:?} is invalid: '+' must be a whole level"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_filter_strips_share_and_group() {
        assert_eq!(shared_filter("$share/g/a/+"), "a/+");
        assert_eq!(shared_filter("$share/g/#"), "#");
        assert_eq!(shared_filter("a/+"), "a/+");
        assert_eq!(shared_filter("$SYS/#"), "$SYS/#");
        // A malformed share (no filter after the group) is matched as written.
        assert_eq!(shared_filter("$share/g"), "$share/g");
    }

    /// Paho Python's own table (tests/test_matcher.py `test_matching`/`test_not_matching`).
    #[test]
    fn paho_matching() {
        for (sub, topic) in [
            ("foo/bar", "foo/bar"),
            ("foo/+", "foo/bar"),
            ("foo/+/baz", "foo/bar/baz"),
            ("foo/+/#", "foo/bar/baz"),
            ("A/B/+/#", "A/B/B/C"),
            ("#", "foo/bar/baz"),
            ("#", "/foo/bar"),
            ("/#", "/foo/bar"),
            ("$SYS/bar", "$SYS/bar"),
        ] {
            assert!(topic_matches_sub(sub, topic), "{sub} should match {topic}");
        }
    }

    #[test]
    fn paho_not_matching() {
        for (sub, topic) in [
            ("test/6/#", "test/3"),
            ("foo/bar", "foo"),
            ("foo/+", "foo/bar/baz"),
            ("foo/+/baz", "foo/bar/bar"),
            ("foo/+/#", "fo2/bar/baz"),
            ("/#", "foo/bar"),
            ("#", "$SYS/bar"),
            ("$BOB/bar", "$SYS/bar"),
        ] {
            assert!(
                !topic_matches_sub(sub, topic),
                "{sub} should not match {topic}"
            );
        }
    }

    #[test]
    fn edge_cases() {
        // `#` matches the parent level.
        assert!(topic_matches_sub("foo/#", "foo"));
        assert!(topic_matches_sub("foo/#", "foo/"));
        assert!(topic_matches_sub("foo/+/#", "foo/bar"));
        assert!(!topic_matches_sub("foo/+/#", "foo"));
        // `+` matches empty levels.
        assert!(topic_matches_sub("+/+", "/"));
        assert!(topic_matches_sub("foo/+", "foo/"));
        assert!(topic_matches_sub("+", ""));
        assert!(topic_matches_sub("/+", "/"));
        assert!(!topic_matches_sub("+", "/"));
        assert!(!topic_matches_sub("foo/+", "foo"));
        // `$` topics: not matched by a leading wildcard, but by a later one.
        assert!(!topic_matches_sub("+/bar", "$SYS/bar"));
        assert!(!topic_matches_sub("+", "$SYS"));
        assert!(topic_matches_sub("$SYS/#", "$SYS/broker/load"));
        assert!(topic_matches_sub("$SYS/+", "$SYS/x"));
        assert!(topic_matches_sub("$SYS/#", "$SYS"));
        // Literal and misc.
        assert!(topic_matches_sub("#", "foo"));
        assert!(topic_matches_sub("#", ""));
        assert!(topic_matches_sub("#", "/"));
        assert!(!topic_matches_sub("foo/bar", "foo/bar/"));
        assert!(!topic_matches_sub("foo", "foo/bar"));
        assert!(!topic_matches_sub("a/#/c", "a/b/c"));
        assert!(topic_matches_sub("", ""));
        assert!(!topic_matches_sub("a", ""));
        assert!(topic_matches_sub("sport/tennis/+", "sport/tennis/player1"));
        assert!(!topic_matches_sub(
            "sport/tennis/+",
            "sport/tennis/player1/ranking"
        ));
        assert!(topic_matches_sub("sport/#", "sport"));
        // Long filters do not blow up.
        let sub = vec!["+"; 500].join("/");
        let topic = vec!["+"; 500].join("/");
        assert!(topic_matches_sub(&sub, &topic));
    }

    #[test]
    fn topic_names() {
        for ok in ["a", "a/b", "/", "a//b", "$SYS/x", "\u{1}", "\u{2A6D4}", " "] {
            assert!(validate_topic_name(ok).is_ok(), "{ok:?}");
        }
        for bad in ["", "a/+", "#", "a+b", "a\0b"] {
            let e = validate_topic_name(bad).unwrap_err();
            assert!(matches!(e, Error::InvalidArgument(_)), "{bad:?}");
        }
        assert!(validate_topic_name(&"a".repeat(65_535)).is_ok());
        assert!(validate_topic_name(&"a".repeat(65_536)).is_err());
    }

    #[test]
    fn topic_filters() {
        for ok in [
            "a",
            "#",
            "+",
            "a/#",
            "+/+",
            "a/+/b",
            "/#",
            "/",
            "+/#",
            "$SYS/#",
            "$share/g/a/+",
        ] {
            assert!(validate_topic_filter(ok).is_ok(), "{ok:?}");
        }
        for bad in [
            "", "a#", "#/a", "a/#/b", "a+", "+a/b", "a/b+", "##", "a\0", "a/#/",
        ] {
            let e = validate_topic_filter(bad).unwrap_err();
            assert!(matches!(e, Error::InvalidArgument(_)), "{bad:?}");
        }
        assert!(validate_topic_filter(&"a".repeat(65_536)).is_err());
    }
}
