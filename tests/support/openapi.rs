//! Monite's OpenAPI document (its webhook part), a checker for the subset of JSON Schema it
//! uses, and instances of its schemas as loose as the document allows.

#![allow(dead_code, reason = "each client test uses what it needs")]

use super::fake_monite;

/// Monite's OpenAPI document, webhook part (API 2024-05-25).
pub(crate) fn openapi() -> serde_json::Value {
    fake_monite::fixture_at("monite-openapi-webhooks.json")
}

/// The schema `#/components/schemas/<name>` or the one `schema` refers to.
fn resolve<'a>(
    root: &'a serde_json::Value,
    schema: &'a serde_json::Value,
) -> &'a serde_json::Value {
    match schema.get("$ref").and_then(|r| r.as_str()) {
        Some(reference) => {
            let name = reference.rsplit('/').next().unwrap();
            resolve(root, &root["components"]["schemas"][name])
        }
        None => schema,
    }
}

/// Where `value` breaks `schema` (the subset the document uses), as `path: reason` lines.
pub(crate) fn violations(
    root: &serde_json::Value,
    schema: &serde_json::Value,
    value: &serde_json::Value,
    at: &str,
) -> Vec<String> {
    use serde_json::Value;
    let schema = resolve(root, schema);
    if let Some(options) = schema.get("anyOf").and_then(Value::as_array) {
        return if options
            .iter()
            .any(|o| violations(root, o, value, at).is_empty())
        {
            Vec::new()
        } else {
            vec![format!("{at}: {value} matches no anyOf option")]
        };
    }
    if let Some(options) = schema.get("oneOf").and_then(Value::as_array) {
        let matching = options
            .iter()
            .filter(|o| violations(root, o, value, at).is_empty())
            .count();
        return if matching == 1 {
            Vec::new()
        } else {
            vec![format!(
                "{at}: {value} matches {matching} oneOf options, not one"
            )]
        };
    }
    if value.is_null() && schema.get("nullable") == Some(&Value::Bool(true)) {
        return Vec::new();
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(value)
    {
        return vec![format!("{at}: {value} is not one of the enum")];
    }
    let mut found = Vec::new();
    let type_ok = match schema.get("type").and_then(Value::as_str) {
        None => true,
        Some("string") => value.is_string(),
        Some("integer") => value.is_i64() || value.is_u64(),
        Some("number") => value.is_number(),
        Some("boolean") => value.is_boolean(),
        Some("null") => value.is_null(),
        Some("array") => value.is_array(),
        Some("object") => value.is_object(),
        Some(other) => panic!("type {other} is not in the walker's subset"),
    };
    if !type_ok {
        return vec![format!("{at}: {value} is not of type {}", schema["type"])];
    }
    if schema.get("format").and_then(Value::as_str) == Some("uuid") {
        let text = value.as_str().unwrap_or_default();
        let shape_ok = text.len() == 36
            && text.char_indices().all(|(i, c)| {
                if [8, 13, 18, 23].contains(&i) {
                    c == '-'
                } else {
                    c.is_ascii_hexdigit()
                }
            });
        if !shape_ok {
            found.push(format!("{at}: {value} is not a uuid"));
        }
    }
    if let Some(items) = schema.get("items")
        && let Some(array) = value.as_array()
    {
        for (i, item) in array.iter().enumerate() {
            found.extend(violations(root, items, item, &format!("{at}[{i}]")));
        }
    }
    if let Some(object) = value.as_object() {
        let properties = schema.get("properties").and_then(Value::as_object);
        for name in schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if !object.contains_key(name.as_str().unwrap()) {
                found.push(format!("{at}: required {name} is missing"));
            }
        }
        for (name, field) in object {
            match properties.and_then(|p| p.get(name)) {
                Some(property) => {
                    found.extend(violations(root, property, field, &format!("{at}.{name}")));
                }
                None if schema.get("additionalProperties") == Some(&Value::Bool(false)) => {
                    found.push(format!("{at}: {name} is not allowed"));
                }
                None => {}
            }
        }
    }
    found
}

/// How loose an instance [`instance`] makes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Looseness {
    /// Only the required fields; integers beyond `u64`.
    RequiredOnly,
    /// Every field, `null` wherever allowed; integers below `i64`.
    NullWherePossible,
    /// Every field, with a value; integers `u64::MAX`.
    Present,
}

/// A JSON text the schema allows, as loose as `looseness` says.
pub(crate) fn instance(
    root: &serde_json::Value,
    schema: &serde_json::Value,
    name: &str,
    looseness: Looseness,
) -> String {
    use serde_json::Value;
    let schema = resolve(root, schema);
    if let Some(options) = schema.get("anyOf").and_then(Value::as_array) {
        let nullable = options.iter().any(|o| o["type"] == "null");
        // A pagination token that is not null would be followed: the fake knows no such token.
        if nullable && (looseness != Looseness::Present || name.ends_with("pagination_token")) {
            return "null".to_owned();
        }
        let option = options.iter().find(|o| o["type"] != "null").unwrap();
        return instance(root, option, name, looseness);
    }
    if let Some(first) = schema.get("enum").and_then(Value::as_array) {
        return first[0].to_string();
    }
    match schema.get("type").and_then(Value::as_str) {
        Some("string") => match schema.get("format").and_then(Value::as_str) {
            Some("uuid") => "\"3fa85f64-5717-4562-b3fc-2c963f66afa6\"".to_owned(),
            Some("uri") => "\"https://example.com/hooks\"".to_owned(),
            Some("date-time") => "\"2024-05-25T00:00:00Z\"".to_owned(),
            _ if name == "secret" => "\"whsec_loosest\"".to_owned(),
            _ => "\"text\"".to_owned(),
        },
        Some("integer") => match looseness {
            Looseness::RequiredOnly => "18446744073709551616".to_owned(),
            Looseness::NullWherePossible => "-9223372036854775809".to_owned(),
            Looseness::Present => u64::MAX.to_string(),
        },
        Some("boolean") => "true".to_owned(),
        Some("array") => format!("[{}]", instance(root, &schema["items"], name, looseness)),
        Some("object") => {
            let required: Vec<&str> = schema
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            let fields: Vec<String> = schema["properties"]
                .as_object()
                .into_iter()
                .flatten()
                .filter(|(field, _)| {
                    looseness != Looseness::RequiredOnly || required.contains(&field.as_str())
                })
                .map(|(field, property)| {
                    format!(
                        "\"{field}\": {}",
                        instance(root, property, field, looseness)
                    )
                })
                .collect();
            format!("{{{}}}", fields.join(", "))
        }
        // `{}`: any JSON.
        _ => "{}".to_owned(),
    }
}

/// The schema of the answer `status` to `method path` (a path template of the document);
/// statuses the document does not list are Monite's error body.
pub(crate) fn answer_schema(
    root: &serde_json::Value,
    method: &str,
    path: &str,
    status: u16,
) -> Option<serde_json::Value> {
    let responses = &root["paths"][path][method]["responses"];
    assert!(
        responses.is_object(),
        "{method} {path} is not in the document"
    );
    match responses.get(status.to_string()) {
        Some(response) => response["content"]["application/json"]
            .get("schema")
            .cloned(),
        None => {
            assert!(status >= 400, "{method} {path}: undocumented {status}");
            Some(serde_json::json!({"$ref": "#/components/schemas/ErrorSchemaResponse"}))
        }
    }
}
