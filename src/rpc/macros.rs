//! `typed_request!`, a Python `BaseRequest` subclass of a `BinaryMultiValue`
//! as a declarative macro.

/// Defines request structs from their fields, each a
/// [`TypedRequest`](crate::rpc::TypedRequest) whose payload is its fields
/// one after another, as a Python `BaseRequest` subclass of a
/// `BinaryMultiValue` is defined.
///
/// ```text
/// [attributes] [pub] struct NAME(RQ_TYPE, "application:request") [-> RESPONSE] { FIELDS }
/// [attributes] [pub] struct NAME(RQ_TYPE, "application:request") [-> RESPONSE];
/// ```
///
/// The fields are those of [`binary_struct!`](crate::binary_struct), which
/// defines the struct: each is written with its cs.binary marker as its type
/// and gets the marker's value type. `RESPONSE` is what a successful answer
/// decodes into (a [`TypedResponse`](crate::rpc::TypedResponse)); without
/// it, the raw flags and payload ([`Response`](crate::Response)), as
/// Python's default `decode_response_payload` returns. Several requests may
/// be defined in one invocation.
///
/// ```
/// use packetstream::binary::{Binary, BSData, BSString, BSUInt};
/// use packetstream::rpc::TypedRequest;
///
/// packetstream::typed_request! {
///     /// cs.packetstream's example: `AddRequest(BaseRequest,
///     /// BinaryMultiValue('AddRequest', dict(hashenum=BSUInt, data=BSData)))`.
///     #[derive(Debug, Clone, PartialEq)]
///     pub struct AddRequest(0, "cs:add") {
///         pub hashenum: BSUInt,
///         pub data: BSData,
///     }
///
///     /// Looks a name up; the answer is the value's text.
///     #[derive(Debug)]
///     pub struct Lookup(1, "cs:lookup") -> String { pub name: BSString }
///
///     /// No fields; a yes or no in the answer's flags.
///     pub struct Ping(2, "cs:ping") -> bool;
/// }
///
/// let rq = AddRequest { hashenum: 1, data: b"hello".to_vec() };
/// assert_eq!(rq.encode_payload()?, [0x01, 0x05, b'h', b'e', b'l', b'l', b'o']);
/// assert_eq!(AddRequest::RQ_TYPE, 0);
/// assert_eq!(<Lookup as TypedRequest>::NAME, "cs:lookup");
/// assert_eq!(AddRequest::from_request(0, b"\x01\x05hello")?, rq);
/// assert!(Ping::decode_all(b"").is_ok());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[macro_export]
macro_rules! typed_request {
    () => {};
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident ($rq_type:expr, $rq_name:expr $(,)?) $(-> $response:ty)? {
            $($fields:tt)*
        }
        $($rest:tt)*
    ) => {
        $crate::binary_struct! {
            $(#[$meta])*
            $vis struct $name { $($fields)* }
        }
        $crate::__typed_request_impl!($name, $rq_type, $rq_name, $($response)?);
        $crate::typed_request!($($rest)*);
    };
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident ($rq_type:expr, $rq_name:expr $(,)?) $(-> $response:ty)?;
        $($rest:tt)*
    ) => {
        $crate::binary_struct! {
            $(#[$meta])*
            $vis struct $name;
        }
        $crate::__typed_request_impl!($name, $rq_type, $rq_name, $($response)?);
        $crate::typed_request!($($rest)*);
    };
}

/// The `TypedRequest` impl of [`typed_request!`]; not for direct use.
#[doc(hidden)]
#[macro_export]
macro_rules! __typed_request_impl {
    ($name:ident, $rq_type:expr, $rq_name:expr, ) => {
        $crate::__typed_request_impl!($name, $rq_type, $rq_name, $crate::Response);
    };
    ($name:ident, $rq_type:expr, $rq_name:expr, $response:ty) => {
        impl $crate::rpc::TypedRequest for $name {
            const RQ_TYPE: u64 = $rq_type;
            const NAME: &'static str = $rq_name;
            type Response = $response;
        }
    };
}
