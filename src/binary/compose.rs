//! Putting fields together: tuples of fields, the empty payload, the raw
//! payload.

use super::{Binary, DecodeError, EncodeError, Field, Reader};

/// No bytes at all: a request or response without a payload.
impl Binary for () {
    fn encode(&self, _out: &mut Vec<u8>) -> Result<(), EncodeError> {
        Ok(())
    }

    fn decode(_input: &mut Reader<'_>) -> Result<(), DecodeError> {
        Ok(())
    }
}

/// The whole payload as it is, with no length of its own. Decoding takes
/// everything left.
impl Binary for Vec<u8> {
    fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        out.extend_from_slice(self);
        Ok(())
    }

    fn decode(input: &mut Reader<'_>) -> Result<Vec<u8>, DecodeError> {
        Ok(input.take_rest().to_vec())
    }
}

/// The empty field: no bytes, the value `()`.
impl Field for () {
    type Value = ();

    fn encode_value(_value: &(), _out: &mut Vec<u8>) -> Result<(), EncodeError> {
        Ok(())
    }

    fn decode_value(_input: &mut Reader<'_>) -> Result<(), DecodeError> {
        Ok(())
    }
}

/// Implements `Field` for a tuple of fields: the fields one after another,
/// the value a tuple of their values. This is cs.binary's
/// `BinaryMultiStruct` with its field names dropped.
macro_rules! tuple_field {
    ($($field:ident)+) => {
        /// The fields one after another; the value is the tuple of their
        /// values.
        impl<$($field: Field),+> Field for ($($field,)+) {
            type Value = ($($field::Value,)+);

            #[allow(non_snake_case)] // each value is named after its field's type
            fn encode_value(value: &Self::Value, out: &mut Vec<u8>) -> Result<(), EncodeError> {
                let ($($field,)+) = value;
                $($field::encode_value($field, out)?;)+
                Ok(())
            }

            fn decode_value(input: &mut Reader<'_>) -> Result<Self::Value, DecodeError> {
                // A tuple expression is evaluated left to right, which is
                // the order of the fields on the wire.
                Ok(($($field::decode_value(input)?,)+))
            }
        }
    };
}

tuple_field!(A);
tuple_field!(A B);
tuple_field!(A B C);
tuple_field!(A B C D);
tuple_field!(A B C D E);
tuple_field!(A B C D E F);
tuple_field!(A B C D E F G);
tuple_field!(A B C D E F G H);
tuple_field!(A B C D E F G H I);
tuple_field!(A B C D E F G H I J);
tuple_field!(A B C D E F G H I J K);
tuple_field!(A B C D E F G H I J K L);
