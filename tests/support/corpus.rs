//! Loader of the mosquitto broker-to-client conformance corpus
//! (`tests/data/mosquitto-msg-sequence/*.json`, described in its README.md).
//!
//! Each JSON file is an array of groups; a group has `group`, `tests` and optional fields
//! that its cases inherit and may override (`ver`, `command`, `clean_start`, `connect`,
//! `connack`, `expect_disconnect`), optional `group_msgs` that run before every case's
//! `msgs`, and `disable: true` to skip it.

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::bytes::parse_payload;

/// One message of a case, after parsing its payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    /// `true`: the broker sends `bytes`; `false` ("recv"): the broker expects exactly `bytes`
    /// from the client.
    pub send: bool,
    pub bytes: Vec<u8>,
    /// The payload as written in the JSON, for messages.
    pub payload: String,
    pub comment: Option<String>,
}

/// One case with its effective fields after group inheritance.
#[derive(Clone, Debug)]
pub struct Case {
    /// File name, e.g. `CONNACK.json`.
    pub file: String,
    pub group: String,
    pub name: String,
    /// Protocol level: 3 (3.1), 4 (3.1.1) or 5. Default 4.
    pub ver: u8,
    pub command: Option<String>,
    /// Default true.
    pub clean_start: bool,
    /// Whether the client's CONNECT is expected first. Default true.
    pub connect: bool,
    /// Whether the broker answers with a success CONNACK. Default true.
    pub connack: bool,
    /// Whether the client must have dropped the connection at the end. Default true.
    pub expect_disconnect: bool,
    /// The group's `group_msgs` followed by the case's `msgs`.
    pub msgs: Vec<Step>,
}

impl Case {
    /// `"FILE.json / group / name"`, unique enough for reports.
    pub fn id(&self) -> String {
        format!("{} / {} / {}", self.file, self.group, self.name)
    }
}

/// The corpus folder of this crate: `$CARGO_MANIFEST_DIR/tests/data/mosquitto-msg-sequence`.
pub fn default_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/mosquitto-msg-sequence")
}

/// Loads every `*.json` file of `dir` (in file-name order). Panics, naming the file, if one
/// can't be read or parsed, or holds an unknown shape.
pub fn load_all(dir: impl AsRef<Path>) -> Vec<Case> {
    let dir = dir.as_ref();
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read corpus dir {}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    assert!(
        !files.is_empty(),
        "no *.json files in corpus dir {}",
        dir.display()
    );
    files.iter().flat_map(load_file).collect()
}

/// Loads one corpus file.
pub fn load_file(path: impl AsRef<Path>) -> Vec<Case> {
    let path = path.as_ref();
    let file = path.file_name().unwrap().to_string_lossy().into_owned();
    let text =
        fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let json: Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{file}: invalid JSON: {e}"));
    let groups = json
        .as_array()
        .unwrap_or_else(|| panic!("{file}: top level is not an array"));
    let mut cases = Vec::new();
    for g in groups {
        let g = g
            .as_object()
            .unwrap_or_else(|| panic!("{file}: a group is not an object"));
        let group =
            str_field(g, "group", &file).unwrap_or_else(|| panic!("{file}: group without a name"));
        let ctx = format!("{file} / {group}");
        if bool_field(g, "disable", &ctx) == Some(true) {
            continue;
        }
        let group_msgs = steps(g.get("group_msgs"), &ctx);
        let tests = g
            .get("tests")
            .and_then(Value::as_array)
            .unwrap_or_else(|| panic!("{ctx}: no \"tests\" array"));
        for t in tests {
            let t = t
                .as_object()
                .unwrap_or_else(|| panic!("{ctx}: a test is not an object"));
            let name =
                str_field(t, "name", &ctx).unwrap_or_else(|| panic!("{ctx}: test without a name"));
            let ctx = format!("{ctx} / {name}");
            let inherit_bool = |key: &str, default: bool| {
                bool_field(t, key, &ctx)
                    .or_else(|| bool_field(g, key, &ctx))
                    .unwrap_or(default)
            };
            let ver = t
                .get("ver")
                .or_else(|| g.get("ver"))
                .map(|v| {
                    v.as_u64()
                        .unwrap_or_else(|| panic!("{ctx}: \"ver\" is not a number: {v}"))
                        as u8
                })
                .unwrap_or(4);
            let mut msgs = group_msgs.clone();
            msgs.extend(steps(t.get("msgs"), &ctx));
            cases.push(Case {
                file: file.clone(),
                group: group.clone(),
                name,
                ver,
                command: str_field(t, "command", &ctx).or_else(|| str_field(g, "command", &ctx)),
                clean_start: inherit_bool("clean_start", true),
                connect: inherit_bool("connect", true),
                connack: inherit_bool("connack", true),
                expect_disconnect: inherit_bool("expect_disconnect", true),
                msgs,
            });
        }
    }
    cases
}

fn str_field(o: &Map<String, Value>, key: &str, ctx: &str) -> Option<String> {
    o.get(key).map(|v| {
        v.as_str()
            .unwrap_or_else(|| panic!("{ctx}: {key:?} is not a string: {v}"))
            .to_string()
    })
}

fn bool_field(o: &Map<String, Value>, key: &str, ctx: &str) -> Option<bool> {
    o.get(key).map(|v| {
        v.as_bool()
            .unwrap_or_else(|| panic!("{ctx}: {key:?} is not a boolean: {v}"))
    })
}

fn steps(v: Option<&Value>, ctx: &str) -> Vec<Step> {
    let Some(v) = v else { return Vec::new() };
    let arr = v
        .as_array()
        .unwrap_or_else(|| panic!("{ctx}: msgs is not an array"));
    arr.iter()
        .map(|m| {
            let m = m
                .as_object()
                .unwrap_or_else(|| panic!("{ctx}: a msg is not an object"));
            let ty =
                str_field(m, "type", ctx).unwrap_or_else(|| panic!("{ctx}: msg without \"type\""));
            let send = match ty.as_str() {
                "send" => true,
                "recv" => false,
                other => panic!("{ctx}: unknown msg type {other:?}"),
            };
            let payload = str_field(m, "payload", ctx)
                .unwrap_or_else(|| panic!("{ctx}: msg without \"payload\""));
            let bytes = super::bytes::try_parse_payload(&payload)
                .unwrap_or_else(|e| panic!("{ctx}: bad payload {payload:?}: {e}"));
            Step {
                send,
                bytes,
                payload,
                comment: str_field(m, "comment", ctx),
            }
        })
        .collect()
}
