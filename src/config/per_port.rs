//! A class value written once for both ports, or once per port as a pair.
//!
//! In the written-once form (a top-level `classes` list) a value that is the same on both
//! ports is written plainly, `ceil: "100%"` (a share is of each port's own link), and one that
//! differs is a pair naming the ports, `rate: (wan: "2 Mbit", lan: "5 Mbit")`. A pair may
//! leave a port out: that port then gets what leaving the field out gives. Whether a pair is
//! allowed where it was written, and whether a missing side is acceptable, is decided by the
//! validation (`plan.rs`), which knows where the class came from.

use crate::port::Side;
use serde::de::{self, Deserializer, IntoDeserializer, MapAccess, Visitor};
use serde::Deserialize;
use std::fmt;
use std::marker::PhantomData;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PerPort<T> {
    /// One value for both ports.
    Both(T),
    /// `(wan: .., lan: ..)`; a side left out is `None`.
    Each { wan: Option<T>, lan: Option<T> },
}

impl<T> PerPort<T> {
    pub fn is_pair(&self) -> bool {
        matches!(self, PerPort::Each { .. })
    }

    /// The value that applies to `side`, if there is one.
    pub fn get(&self, side: Side) -> Option<&T> {
        match self {
            PerPort::Both(v) => Some(v),
            PerPort::Each { wan, lan } => match side {
                Side::Wan => wan.as_ref(),
                Side::Lan => lan.as_ref(),
            },
        }
    }
}

/// A key of a pair: read as an identifier, as ron gives a struct's field names.
#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "lowercase")]
enum PortName {
    Wan,
    Lan,
}

/// Written by hand rather than `#[serde(untagged)]`: an untagged enum buffers the value and
/// loses ron's position and message for a mistake inside a pair (`(wna: ...)`), which this
/// keeps, since the pair's values are read straight from the file.
impl<'de, T: Deserialize<'de>> Deserialize<'de> for PerPort<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);

        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = PerPort<T>;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a value, or one per port: (wan: ..., lan: ...)")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                T::deserialize(v.into_deserializer()).map(PerPort::Both)
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                T::deserialize(v.into_deserializer()).map(PerPort::Both)
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                T::deserialize(v.into_deserializer()).map(PerPort::Both)
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let (mut wan, mut lan) = (None, None);
                while let Some(key) = map.next_key::<PortName>()? {
                    let (slot, name) = match key {
                        PortName::Wan => (&mut wan, "wan"),
                        PortName::Lan => (&mut lan, "lan"),
                    };
                    if slot.is_some() {
                        return Err(de::Error::duplicate_field(name));
                    }
                    *slot = Some(map.next_value()?);
                }
                Ok(PerPort::Each { wan, lan })
            }
        }

        d.deserialize_any(V(PhantomData))
    }
}
