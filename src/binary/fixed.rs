//! Fixed-width integers, floats and byte strings: Python's `struct.pack`
//! with standard sizes and no padding.

use byteorder::{BigEndian, ByteOrder, LittleEndian};

use super::{DecodeError, EncodeError, Field, Reader};

/// Defines a marker for one fixed-width number in one byte order.
macro_rules! fixed_number {
    ($(#[$doc:meta])* $name:ident, $value:ty, $order:ty, $read:ident, $write:ident, $format:literal) => {
        $(#[$doc])*
        #[doc = concat!("\n\nThe value is a `", stringify!($value), "`, written as Python's `struct.pack('",
            $format, "', value)`.")]
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
        pub struct $name;

        impl Field for $name {
            type Value = $value;

            fn encode_value(value: &$value, out: &mut Vec<u8>) -> Result<(), EncodeError> {
                let mut bytes = [0u8; size_of::<$value>()];
                <$order>::$write(&mut bytes, *value);
                out.extend_from_slice(&bytes);
                Ok(())
            }

            fn decode_value(input: &mut Reader<'_>) -> Result<$value, DecodeError> {
                let bytes = input.take(size_of::<$value>(), stringify!($name))?;
                Ok(<$order>::$read(bytes))
            }
        }
    };
}

/// cs.binary's `UInt8`: one unsigned byte.
///
/// The value is a `u8`, written as Python's `struct.pack('B', value)`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct UInt8;

impl Field for UInt8 {
    type Value = u8;

    fn encode_value(value: &u8, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        out.push(*value);
        Ok(())
    }

    fn decode_value(input: &mut Reader<'_>) -> Result<u8, DecodeError> {
        let [byte] = input.take_array("UInt8")?;
        Ok(byte)
    }
}

/// One signed byte, Python's `struct` format `b`.
///
/// cs.binary has no class for it (it appears inside multi-field formats such
/// as `'>HbQ'`); the name follows cs.binary's pattern.
///
/// The value is an `i8`, written as Python's `struct.pack('b', value)`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Int8;

impl Field for Int8 {
    type Value = i8;

    fn encode_value(value: &i8, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        out.extend_from_slice(&value.to_be_bytes());
        Ok(())
    }

    fn decode_value(input: &mut Reader<'_>) -> Result<i8, DecodeError> {
        Ok(i8::from_be_bytes(input.take_array("Int8")?))
    }
}

fixed_number!(
    /// cs.binary's `Int16BE`: a signed 16-bit integer, big-endian.
    Int16BE, i16, BigEndian, read_i16, write_i16, ">h"
);
fixed_number!(
    /// cs.binary's `Int16LE`: a signed 16-bit integer, little-endian.
    Int16LE, i16, LittleEndian, read_i16, write_i16, "<h"
);
fixed_number!(
    /// cs.binary's `UInt16BE`: an unsigned 16-bit integer, big-endian.
    UInt16BE, u16, BigEndian, read_u16, write_u16, ">H"
);
fixed_number!(
    /// cs.binary's `UInt16LE`: an unsigned 16-bit integer, little-endian.
    UInt16LE, u16, LittleEndian, read_u16, write_u16, "<H"
);
fixed_number!(
    /// cs.binary's `Int32BE`: a signed 32-bit integer, big-endian.
    Int32BE, i32, BigEndian, read_i32, write_i32, ">l"
);
fixed_number!(
    /// cs.binary's `Int32LE`: a signed 32-bit integer, little-endian.
    Int32LE, i32, LittleEndian, read_i32, write_i32, "<l"
);
fixed_number!(
    /// cs.binary's `UInt32BE`: an unsigned 32-bit integer, big-endian.
    UInt32BE, u32, BigEndian, read_u32, write_u32, ">L"
);
fixed_number!(
    /// cs.binary's `UInt32LE`: an unsigned 32-bit integer, little-endian.
    UInt32LE, u32, LittleEndian, read_u32, write_u32, "<L"
);
fixed_number!(
    /// A signed 64-bit integer, big-endian.
    ///
    /// cs.binary 20240630 has no `Int64BE` (only the unsigned `UInt64BE`);
    /// this is the missing sibling, Python's `struct` format `>q`.
    Int64BE, i64, BigEndian, read_i64, write_i64, ">q"
);
fixed_number!(
    /// A signed 64-bit integer, little-endian.
    ///
    /// cs.binary 20240630 has no `Int64LE` (only the unsigned `UInt64LE`);
    /// this is the missing sibling, Python's `struct` format `<q`.
    Int64LE, i64, LittleEndian, read_i64, write_i64, "<q"
);
fixed_number!(
    /// cs.binary's `UInt64BE`: an unsigned 64-bit integer, big-endian.
    UInt64BE, u64, BigEndian, read_u64, write_u64, ">Q"
);
fixed_number!(
    /// cs.binary's `UInt64LE`: an unsigned 64-bit integer, little-endian.
    UInt64LE, u64, LittleEndian, read_u64, write_u64, "<Q"
);
fixed_number!(
    /// cs.binary's `Float64BE`: an IEEE 754 double, big-endian. Every bit
    /// pattern goes through unchanged, NaN payloads included.
    Float64BE, f64, BigEndian, read_f64, write_f64, ">d"
);
fixed_number!(
    /// cs.binary's `Float64LE`: an IEEE 754 double, little-endian. Every bit
    /// pattern goes through unchanged, NaN payloads included.
    Float64LE, f64, LittleEndian, read_f64, write_f64, "<d"
);

/// cs.binary's `BinaryFixedBytes(name, N)`: exactly `N` bytes, Python's
/// `struct` format `>{N}s`.
///
/// The value is a `[u8; N]`, so it always has the right length. Python pads
/// a short value with NULs and cuts a long one, silently; here neither can
/// happen.
///
/// ```
/// use packetstream::binary::{Field, FixedBytes};
///
/// assert_eq!(FixedBytes::<4>::value_to_bytes(b"zyxw")?, b"zyxw");
/// assert!(FixedBytes::<4>::value_from_bytes(b"zyx").is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct FixedBytes<const N: usize>;

impl<const N: usize> Field for FixedBytes<N> {
    type Value = [u8; N];

    fn encode_value(value: &[u8; N], out: &mut Vec<u8>) -> Result<(), EncodeError> {
        out.extend_from_slice(value);
        Ok(())
    }

    fn decode_value(input: &mut Reader<'_>) -> Result<[u8; N], DecodeError> {
        input.take_array("BinaryFixedBytes")
    }
}
