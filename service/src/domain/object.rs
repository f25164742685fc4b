//! JSON objects only: serde reads a struct from a JSON array as well (by
//! field order), which the API's schema does not allow. Bodies and their
//! nested structs are read through these, so `["a", "b"]` is never taken
//! for `{"name": "a", "instructions": "b"}`.

use serde::Deserialize;
use serde::de::{DeserializeOwned, Deserializer, Error};
use serde_json::{Map, Value};

/// `T`, read from a JSON object and nothing else; an error names the path
/// of the field at fault (`blueprint.sessions[0].goals: ...`).
pub fn from_object<T: DeserializeOwned, E: Error>(object: Map<String, Value>) -> Result<T, E> {
    serde_path_to_error::deserialize(Value::Object(object)).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." {
            E::custom(inner)
        } else {
            E::custom(format!("{path}: {inner}"))
        }
    })
}

/// `T`, read from JSON text that must be an object.
pub fn from_slice<T: DeserializeOwned>(body: &[u8]) -> Result<T, serde_json::Error> {
    from_object(serde_json::from_slice::<Map<String, Value>>(body)?)
}

/// For `#[serde(deserialize_with)]` on a struct field.
pub fn field<'de, D: Deserializer<'de>, T: DeserializeOwned>(d: D) -> Result<T, D::Error> {
    from_object(Map::deserialize(d)?)
}

/// For `#[serde(default, deserialize_with)]` on an optional struct field:
/// absent or `null` is `None`.
pub fn optional<'de, D: Deserializer<'de>, T: DeserializeOwned>(
    d: D,
) -> Result<Option<T>, D::Error> {
    Option::<Map<String, Value>>::deserialize(d)?
        .map(from_object)
        .transpose()
}

/// For `#[serde(deserialize_with)]` on a list of structs.
pub fn each<'de, D: Deserializer<'de>, T: DeserializeOwned>(d: D) -> Result<Vec<T>, D::Error> {
    Vec::<Map<String, Value>>::deserialize(d)?
        .into_iter()
        .map(from_object)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, serde::Deserialize)]
    struct Inner {
        a: Option<u8>,
    }

    #[derive(Debug, PartialEq, serde::Deserialize)]
    struct Outer {
        #[serde(default, deserialize_with = "optional")]
        one: Option<Inner>,
        #[serde(default, deserialize_with = "each")]
        many: Vec<Inner>,
    }

    #[test]
    fn structs_are_read_from_objects_only_at_every_depth() {
        // What plain serde accepts: a struct from an array.
        assert!(serde_json::from_str::<Outer>(r#"[null, []]"#).is_ok());
        assert!(from_slice::<Outer>(br#"[null, []]"#).is_err());
        assert!(from_slice::<Outer>(br#"{"one": [1]}"#).is_err());
        assert!(from_slice::<Outer>(br#"{"many": [[1]]}"#).is_err());
        assert_eq!(
            from_slice::<Outer>(br#"{"one": {"a": 1}, "many": [{}, {"a": 2}]}"#).ok(),
            Some(Outer {
                one: Some(Inner { a: Some(1) }),
                many: vec![Inner { a: None }, Inner { a: Some(2) }],
            })
        );
        assert_eq!(
            from_slice::<Outer>(br#"{"one": null}"#).ok(),
            Some(Outer {
                one: None,
                many: vec![]
            })
        );
    }
}
