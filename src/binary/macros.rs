//! `binary_struct!`, cs.binary's `BinaryMultiValue` as a declarative macro.

/// Defines structs whose fields are cs.binary fields, encoded one after
/// another, as cs.binary's `BinaryMultiValue` and `BinaryMultiStruct` do.
///
/// Each field is written with its [`Field`](crate::binary::Field) marker as
/// its type; the struct gets the marker's value type instead (`BSUInt`
/// becomes `u64`, `BSData` becomes `Vec<u8>`: the type is spelled
/// [`ValueOf<BSUInt>`](crate::binary::ValueOf)). The struct implements
/// [`Binary`](crate::binary::Binary), to be a whole payload, and
/// [`Field`](crate::binary::Field) with itself as the value, to be a field of
/// another such struct. Attributes, doc comments and visibility are passed
/// through. Several structs may be defined in one invocation; a struct may
/// have no fields (`struct Ping {}` or `struct Ping;`).
///
/// Nothing but the fields goes on the wire: no tags, no count, no length,
/// so both sides must list the same fields in the same order.
///
/// ```
/// use packetstream::binary::{Binary, BSData, BSString, BSUInt, FixedBytes, UInt16BE};
///
/// packetstream::binary_struct! {
///     /// cs.packetstream's example request.
///     #[derive(Debug, Clone, PartialEq)]
///     pub struct AddRequest {
///         /// Which hash function.
///         pub hashenum: BSUInt,
///         /// The bytes to add.
///         pub data: BSData,
///     }
///
///     /// A struct nested in another.
///     #[derive(Debug, PartialEq)]
///     pub struct Tagged { pub name: BSString, pub request: AddRequest, pub pair: (UInt16BE, FixedBytes<2>) }
///
///     /// No payload at all.
///     #[derive(Debug, PartialEq)]
///     pub struct Ping;
/// }
///
/// let rq = AddRequest { hashenum: 1, data: b"hello".to_vec() };
/// assert_eq!(rq.to_bytes()?, b"\x01\x05hello");
/// assert_eq!(AddRequest::decode_all(b"\x01\x05hello")?, rq);
///
/// let tagged = Tagged { name: "t".into(), request: rq, pair: (0x8182, *b"zy") };
/// assert_eq!(tagged.to_bytes()?, b"\x01t\x01\x05hello\x81\x82zy");
///
/// assert_eq!(Ping.to_bytes()?, b"");
/// assert!(Ping::decode_all(b"\x00").is_err()); // unparsed data at offset 0
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[macro_export]
macro_rules! binary_struct {
    () => {};
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident {
            $( $(#[$field_meta:meta])* $field_vis:vis $field:ident : $field_type:ty ),* $(,)?
        }
        $($rest:tt)*
    ) => {
        $(#[$meta])*
        $vis struct $name {
            $( $(#[$field_meta])* $field_vis $field: $crate::binary::ValueOf<$field_type>, )*
        }
        $crate::__binary_struct_impls!($name { $($field: $field_type),* });
        $crate::binary_struct!($($rest)*);
    };
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident;
        $($rest:tt)*
    ) => {
        $(#[$meta])*
        $vis struct $name;
        $crate::__binary_struct_impls!($name {});
        $crate::binary_struct!($($rest)*);
    };
}

/// The trait impls of [`binary_struct!`]; not for direct use.
#[doc(hidden)]
#[macro_export]
macro_rules! __binary_struct_impls {
    ($name:ident { $($field:ident : $field_type:ty),* }) => {
        impl $crate::binary::Binary for $name {
            fn encode(
                &self,
                out: &mut ::std::vec::Vec<u8>,
            ) -> ::std::result::Result<(), $crate::binary::EncodeError> {
                $( <$field_type as $crate::binary::Field>::encode_value(&self.$field, out)?; )*
                let _ = out; // a struct without fields writes nothing
                ::std::result::Result::Ok(())
            }

            fn decode(
                input: &mut $crate::binary::Reader<'_>,
            ) -> ::std::result::Result<Self, $crate::binary::DecodeError> {
                let _ = &input; // a struct without fields reads nothing
                // Field initialisers run in the order written, which is the
                // order of the fields on the wire.
                ::std::result::Result::Ok($name {
                    $( $field: <$field_type as $crate::binary::Field>::decode_value(input)?, )*
                })
            }
        }

        impl $crate::binary::Field for $name {
            type Value = $name;

            fn encode_value(
                value: &$name,
                out: &mut ::std::vec::Vec<u8>,
            ) -> ::std::result::Result<(), $crate::binary::EncodeError> {
                <$name as $crate::binary::Binary>::encode(value, out)
            }

            fn decode_value(
                input: &mut $crate::binary::Reader<'_>,
            ) -> ::std::result::Result<$name, $crate::binary::DecodeError> {
                <$name as $crate::binary::Binary>::decode(input)
            }
        }
    };
}
