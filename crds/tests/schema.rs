//! The generated CRD schemas, read the way the API server reads them: every `format` must be one
//! it knows, and the Tier's schema must refuse what the operator's `validate_tier` refuses where a
//! schema can say it (pattern for the quota's shape, CEL rules for the rest).

use std::path::Path;

use alluvium_crds::quantity::{
    quota_bytes, size_bytes, SizeError, NOT_ZERO_RULE, QUOTA_PATTERN, SIZE_PATTERN,
    WHOLE_BYTES_RULE,
};
use serde_json::Value;

/// The formats a Kubernetes API server recognizes in a CRD schema (JSONSchemaProps.format in the
/// apiextensions.k8s.io/v1 reference, plus the OpenAPI integer and number formats). Written out
/// here rather than taken from the crate, so the test does not trust the code it checks.
const APISERVER_FORMATS: &[&str] = &[
    "bsonobjectid",
    "uri",
    "email",
    "hostname",
    "ipv4",
    "ipv6",
    "cidr",
    "mac",
    "uuid",
    "uuid3",
    "uuid4",
    "uuid5",
    "isbn",
    "isbn10",
    "isbn13",
    "creditcard",
    "ssn",
    "hexcolor",
    "rgbcolor",
    "byte",
    "password",
    "date",
    "duration",
    "datetime",
    "date-time",
    "int32",
    "int64",
    "float",
    "double",
];

/// Every `format` keyword (a string value; a property named `format` is an object) with its path.
fn formats(v: &Value, path: &str, out: &mut Vec<(String, String)>) {
    match v {
        Value::Object(map) => {
            for (k, child) in map {
                match (k.as_str(), child) {
                    ("format", Value::String(f)) => out.push((path.to_string(), f.clone())),
                    _ => formats(child, &format!("{path}.{k}"), out),
                }
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                formats(child, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

#[test]
fn no_generated_schema_carries_a_format_the_apiserver_does_not_know() {
    let mut docs: Vec<(String, Value)> = alluvium_crds::crds()
        .iter()
        .map(|c| {
            (
                alluvium_crds::crd_file_name(c),
                serde_json::to_value(c).unwrap(),
            )
        })
        .collect();
    // The checked-in files too: they are what users apply.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("generated");
    for entry in std::fs::read_dir(&dir).unwrap() {
        let file = entry.unwrap().path();
        let text = std::fs::read_to_string(&file).unwrap();
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let v: Value = serde::Deserialize::deserialize(doc).unwrap();
            docs.push((file.display().to_string(), v));
        }
    }
    let mut unknown = Vec::new();
    let mut seen = 0;
    for (name, doc) in &docs {
        let mut found = Vec::new();
        formats(doc, "", &mut found);
        seen += found.len();
        for (path, f) in found {
            if !APISERVER_FORMATS.contains(&f.as_str()) {
                unknown.push(format!("{name}{path}: {f}"));
            }
        }
    }
    assert!(seen > 0, "the walk found no format at all");
    assert!(unknown.is_empty(), "unrecognized formats: {unknown:#?}");
}

/// The Tier's `openAPIV3Schema.properties.spec`.
fn tier_spec_schema() -> Value {
    let tier = serde_json::to_value(&alluvium_crds::crds()[0]).unwrap();
    tier["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"].clone()
}

fn rules(schema: &Value) -> Vec<String> {
    schema["x-kubernetes-validations"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|r| r["rule"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn tier_quota_schema_is_the_parsers_pattern_with_whole_byte_and_non_zero_rules() {
    let spec = tier_spec_schema();
    let quota = &spec["properties"]["quota"];
    assert_eq!(quota["pattern"], QUOTA_PATTERN);
    let r = rules(quota);
    assert!(r.contains(&WHOLE_BYTES_RULE.to_string()), "{r:?}");
    assert!(r.contains(&NOT_ZERO_RULE.to_string()), "{r:?}");
    // A bounded length keeps the CEL rules' estimated cost within the API server's budget.
    assert!(quota["maxLength"].as_u64().is_some());
}

#[test]
fn tier_schema_refuses_a_mem_tier_at_dev_shm_itself_and_dotted_host_paths() {
    let spec = tier_spec_schema();
    let r = rules(&spec);
    assert!(
        r.contains(&alluvium_crds::MEM_UNDER_DEV_SHM_RULE.to_string()),
        "{r:?}"
    );
    // The old rule, `startsWith('/dev/shm/')`, let `/dev/shm/` itself through.
    assert!(!r
        .iter()
        .any(|rule| rule.contains("startsWith('/dev/shm/')")));
    assert!(r.iter().any(|rule| rule.contains("lowWatermark > 0.0")));
    let host = rules(&spec["properties"]["hostPath"]);
    assert!(host.contains(&alluvium_crds::HOST_PATH_NOT_ROOT_RULE.to_string()));
    assert!(host.contains(&alluvium_crds::HOST_PATH_NO_DOTS_RULE.to_string()));
}

/// Every string of up to `len` characters over `alphabet`.
fn strings(alphabet: &[&str], len: usize) -> Vec<String> {
    let mut all = vec![String::new()];
    let mut layer = vec![String::new()];
    for _ in 0..len {
        layer = layer
            .iter()
            .flat_map(|p| alphabet.iter().map(move |a| format!("{p}{a}")))
            .collect();
        all.extend(layer.iter().cloned());
    }
    all
}

fn candidates() -> Vec<String> {
    let mut c = strings(
        &[
            "0", "1", "5", ".", "Ki", "Gi", "k", "M", "m", "K", "i", "e", "B", "b", " ", "-", "+",
        ],
        4,
    );
    c.extend(
        [
            "1.5Gi",
            "0.5",
            "8",
            "1.1Ki",
            "1Gi ",
            " 1Gi",
            "1gi",
            "1GiB",
            "1e3",
            "1E3",
            "0x10",
            "１Gi",
            "16384Pi",
            "1.0000000001Gi",
            "1Ei",
            "1Pi",
            "100m",
        ]
        .map(String::from),
    );
    c
}

#[test]
fn size_pattern_and_parse_size_accept_the_same_shapes() {
    let re = regex::Regex::new(SIZE_PATTERN).unwrap();
    let mut disagree = Vec::new();
    for s in candidates() {
        let parser_shape_ok = size_bytes(&s) != Err(SizeError::NotASize);
        if re.is_match(&s) != parser_shape_ok {
            disagree.push(format!(
                "{s:?}: pattern {} parser {parser_shape_ok}",
                re.is_match(&s)
            ));
        }
    }
    assert!(disagree.is_empty(), "{disagree:#?}");
}

#[test]
fn quota_pattern_and_the_quota_parser_accept_the_same_shapes() {
    let re = regex::Regex::new(QUOTA_PATTERN).unwrap();
    let mut disagree = Vec::new();
    for s in candidates() {
        let parsed = quota_bytes(&s);
        let parser_shape_ok = !matches!(parsed, Err(SizeError::NotASize | SizeError::NoUnit));
        if re.is_match(&s) != parser_shape_ok {
            disagree.push(format!(
                "{s:?}: pattern {} parser {parsed:?}",
                re.is_match(&s)
            ));
        }
    }
    assert!(disagree.is_empty(), "{disagree:#?}");
    // What the pattern lets through, the CEL rules and the parser refuse alike: fractions of a
    // byte ([`WHOLE_BYTES_RULE`]) and zero ([`NOT_ZERO_RULE`]).
    assert_eq!(quota_bytes("1.1Ki"), Err(SizeError::FractionOfAByte));
    assert_eq!(quota_bytes("0Gi"), Ok(0));
}
