//! The cs.binary field codecs against the bytes of cs-binary.md (sections 1
//! and 2), against vectors written by the real Python (tests/data, made by
//! tests/python/gen_bsfloat_vectors.py), by round trips at the boundaries,
//! and on bad input.

use packetstream::binary::{
    float_repr, parse_float, BSData, BSSFloat, BSString, BSUInt, Binary, DecodeError, EncodeError, Field, FixedBytes,
    Float64BE, Float64LE, Int16BE, Int16LE, Int32BE, Int32LE, Int64BE, Int64LE, Int8, Reader, Rest, UInt16BE, UInt16LE,
    UInt32BE, UInt32LE, UInt64BE, UInt64LE, UInt8, Utf16BeNul, Utf16LeNul, Utf8Nul,
};

/// Bytes from the document's space-separated hex.
fn hex(text: &str) -> Vec<u8> {
    text.split_whitespace().map(|pair| u8::from_str_radix(pair, 16).expect("hex byte")).collect()
}

fn enc<F: Field>(value: &F::Value) -> Vec<u8> {
    F::value_to_bytes(value).expect("encodes")
}

/// Checks that `value` encodes to exactly `bytes` and that `bytes` decode,
/// using all of them, back to `value`.
#[track_caller]
fn golden<F: Field>(value: F::Value, bytes: &[u8])
where
    F::Value: PartialEq + std::fmt::Debug,
{
    assert_eq!(enc::<F>(&value), bytes, "encoding {value:?}");
    assert_eq!(F::value_from_bytes(bytes), Ok(value), "decoding {bytes:02x?}");
}

#[track_caller]
fn round_trip<F: Field>(value: F::Value)
where
    F::Value: PartialEq + std::fmt::Debug,
{
    let bytes = enc::<F>(&value);
    assert_eq!(F::value_from_bytes(&bytes), Ok(value));
}

packetstream::binary_struct! {
    /// The two-field struct `('>H4s', 'short bs')` of the BinaryMultiValue example.
    #[derive(Debug, Clone, PartialEq)]
    pub struct ShortBs { pub short: UInt16BE, pub bs: FixedBytes<4> }

    /// The document's BinaryMultiValue example, its `nd` field as a nested struct.
    #[derive(Debug, Clone, PartialEq)]
    pub struct Bmv {
        pub n1: UInt8,
        pub n2: UInt8,
        pub nd: ShortBs,
        pub s: BSString,
        pub f: BSSFloat,
        pub d: BSData,
    }

    /// The same, with `nd` as a tuple of fields.
    #[derive(Debug, Clone, PartialEq)]
    pub struct BmvTuple {
        pub n1: UInt8,
        pub n2: UInt8,
        pub nd: (UInt16BE, FixedBytes<4>),
        pub s: BSString,
        pub f: BSSFloat,
        pub d: BSData,
    }

    /// cs.binary's own BinaryMultiValue doctest.
    #[derive(Debug, Clone, PartialEq)]
    struct CsBinaryBmv { n1: UInt8, n2: UInt8, n3: UInt8, nd: ShortBs, data1: BSData, data2: BSData }

    /// `BinaryMultiStruct('X', '>HbQ', 'a b c')`.
    #[derive(Debug, Clone, PartialEq)]
    struct HbQ { a: UInt16BE, b: Int8, c: UInt64BE }

    /// cs.packetstream's example request (section 3 of the document).
    #[derive(Debug, Clone, PartialEq)]
    pub struct AddRequest { pub hashenum: BSUInt, pub data: BSData }

    /// No fields, braces.
    #[derive(Debug, Clone, PartialEq, Default)]
    pub struct Empty {}

    /// No fields, unit.
    #[derive(Debug, Clone, PartialEq)]
    pub struct Unit;

    /// Every kind of field at once, for the cut and garbage tests.
    #[derive(Debug, Clone, PartialEq)]
    pub struct Everything {
        pub a: BSUInt,
        pub b: BSData,
        pub c: BSString,
        pub d: BSSFloat,
        pub e: (UInt8, Int8),
        pub f: Int16BE,
        pub g: UInt32LE,
        pub h: Float64BE,
        pub i: FixedBytes<3>,
        pub j: Utf16BeNul,
        pub k: AddRequest,
        pub l: Empty,
        pub m: Utf8Nul,
    }
}

fn everything() -> Everything {
    Everything {
        a: 300,
        b: b"data".to_vec(),
        c: "héllo €😀".to_string(),
        d: 0.1,
        e: (200, -2),
        f: -300,
        g: 0x12345678,
        h: 1.5,
        i: *b"xyz",
        j: "ab😀".to_string(),
        k: AddRequest { hashenum: 1, data: b"hello".to_vec() },
        l: Empty {},
        m: "end".to_string(),
    }
}

// ---- Section 1: scalar field types ----

#[test]
fn bsuint_table() {
    golden::<BSUInt>(0, &hex("00"));
    golden::<BSUInt>(1, &hex("01"));
    golden::<BSUInt>(127, &hex("7f"));
    golden::<BSUInt>(128, &hex("81 00"));
    golden::<BSUInt>(255, &hex("81 7f"));
    golden::<BSUInt>(300, &hex("82 2c"));
    golden::<BSUInt>(16383, &hex("ff 7f"));
    golden::<BSUInt>(16384, &hex("81 80 00"));
    golden::<BSUInt>(1 << 32, &hex("90 80 80 80 00"));
    golden::<BSUInt>(1 << 63, &hex("81 80 80 80 80 80 80 80 80 00"));
    golden::<BSUInt>(u64::MAX, &hex("81 ff ff ff ff ff ff ff ff 7f"));
}

#[test]
fn bsuint_past_u64_is_refused() {
    assert_eq!(
        BSUInt::value_from_bytes(&hex("82 80 80 80 80 80 80 80 80 00")),
        Err(DecodeError::UIntOverflow { what: "BSUInt", offset: 0 })
    );
    // 2^70 takes eleven bytes; the overflow is found all the same.
    assert_eq!(
        BSUInt::value_from_bytes(&hex("81 80 80 80 80 80 80 80 80 80 00")),
        Err(DecodeError::UIntOverflow { what: "BSUInt", offset: 0 })
    );
    assert_eq!(BSUInt::value_from_bytes(&[0xff; 40]), Err(DecodeError::UIntOverflow { what: "BSUInt", offset: 0 }));
}

#[test]
fn bsuint_padding_is_accepted_without_limit() {
    assert_eq!(BSUInt::value_from_bytes(&hex("80 80 05")), Ok(5));
    assert_eq!(BSUInt::value_from_bytes(&hex("80 00")), Ok(0));
    // Python reads any number of 0x80 bytes, and so does this side.
    let mut padded = vec![0x80; 30];
    padded.extend(hex("81 ff ff ff ff ff ff ff ff 7f"));
    assert_eq!(BSUInt::value_from_bytes(&padded), Ok(u64::MAX));
    assert_eq!(
        BSUInt::value_from_bytes(&[0x80; 30]),
        Err(DecodeError::Short { what: "BSUInt", offset: 0, needed: 31, available: 30 })
    );
}

#[test]
fn bsdata_table() {
    golden::<BSData>(b"".to_vec(), &hex("00"));
    golden::<BSData>(b"A".to_vec(), &hex("01 41"));
    golden::<BSData>(b"hello".to_vec(), &hex("05 68 65 6c 6c 6f"));
    let data: Vec<u8> = (0..200).map(|i| i as u8).collect();
    let mut bytes = hex("81 48");
    bytes.extend(&data);
    golden::<BSData>(data, &bytes);
    // The str pitfall of the document: 'str' goes as its ASCII bytes.
    golden::<BSData>(b"str".to_vec(), &hex("03 73 74 72"));
}

#[test]
fn bsstring_table() {
    golden::<BSString>(String::new(), &hex("00"));
    golden::<BSString>("A".into(), &hex("01 41"));
    golden::<BSString>("héllo".into(), &hex("06 68 c3 a9 6c 6c 6f"));
    golden::<BSString>("€".into(), &hex("03 e2 82 ac"));
    assert_eq!(BSString::value_from_bytes(&hex("01 ff")), Err(DecodeError::Utf8 { what: "BSString", offset: 1 }));
}

#[test]
fn bssfloat_table() {
    let table: &[(f64, &[u8])] = &[
        (0.0, b"\x030.0"),
        (0.1, b"\x030.1"),
        (1.0, b"\x031.0"),
        (-2.0, b"\x04-2.0"),
        (-0.0, b"\x04-0.0"),
        (1e15, b"\x121000000000000000.0"),
        (1e16, b"\x051e+16"),
        (1e100, b"\x061e+100"),
        (1e-4, b"\x060.0001"),
        (1e-5, b"\x051e-05"),
        (1.0 / 3.0, b"\x120.3333333333333333"),
        (5e-324, b"\x065e-324"),
        (f64::INFINITY, b"\x03inf"),
        (f64::NEG_INFINITY, b"\x04-inf"),
    ];
    for &(value, bytes) in table {
        assert_eq!(enc::<BSSFloat>(&value), bytes, "{value:e}");
        let back = BSSFloat::value_from_bytes(bytes).expect("decodes");
        assert_eq!(back.to_bits(), value.to_bits(), "{bytes:?}");
    }
    assert_eq!(enc::<BSSFloat>(&f64::NAN), b"\x03nan");
    assert!(BSSFloat::value_from_bytes(b"\x03nan").expect("decodes").is_nan());
    // What Python sends for the int 3.
    assert_eq!(BSSFloat::value_from_bytes(b"\x013"), Ok(3.0));
}

#[test]
fn bssfloat_reads_what_python_float_reads() {
    assert_eq!(BSSFloat::value_from_bytes(b"\x03 1 "), Ok(1.0));
    assert_eq!(BSSFloat::value_from_bytes(b"\x031_0"), Ok(10.0));
    assert_eq!(BSSFloat::value_from_bytes(b"\x08Infinity"), Ok(f64::INFINITY));
    assert!(BSSFloat::value_from_bytes(b"\x04-nan").expect("decodes").is_nan());
    assert_eq!(BSSFloat::value_from_bytes(b"\x011"), Ok(1.0));
}

#[test]
fn fixed_width_table() {
    golden::<UInt8>(200, &hex("c8"));
    golden::<Int16BE>(-2, &hex("ff fe"));
    golden::<Int16LE>(-2, &hex("fe ff"));
    golden::<UInt16BE>(0x1234, &hex("12 34"));
    golden::<UInt16LE>(0x1234, &hex("34 12"));
    golden::<Int32BE>(-2, &hex("ff ff ff fe"));
    golden::<Int32LE>(-2, &hex("fe ff ff ff"));
    golden::<UInt32BE>(0x12345678, &hex("12 34 56 78"));
    golden::<UInt32LE>(0x12345678, &hex("78 56 34 12"));
    golden::<UInt64BE>(0x0102030405060708, &hex("01 02 03 04 05 06 07 08"));
    golden::<UInt64LE>(0x0102030405060708, &hex("08 07 06 05 04 03 02 01"));
    golden::<Float64BE>(1.5, &hex("3f f8 00 00 00 00 00 00"));
    golden::<Float64LE>(1.5, &hex("00 00 00 00 00 00 f8 3f"));
    // Not in cs.binary; the bytes are Python's struct.pack('>q'/'<q'/'b', -2).
    golden::<Int64BE>(-2, &hex("ff ff ff ff ff ff ff fe"));
    golden::<Int64LE>(-2, &hex("fe ff ff ff ff ff ff ff"));
    golden::<Int8>(-2, &hex("fe"));
}

#[test]
fn cs_binary_own_struct_test_cases() {
    // The TEST_CASES cs.binary attaches to its classes.
    golden::<UInt8>(65, b"A");
    golden::<Int16BE>(-32768, &hex("80 00"));
    golden::<Int16LE>(-32768, &hex("00 80"));
    golden::<Int32BE>(2147483647, &hex("7f ff ff ff"));
    golden::<Int32LE>(-2147483648, &hex("00 00 00 80"));
    golden::<UInt32LE>(4294967294, &hex("fe ff ff ff"));
    golden::<UInt64BE>(4294967296, &hex("00 00 00 01 00 00 00 00"));
    golden::<UInt64LE>(9223372036854775808, &hex("00 00 00 00 00 00 00 80"));
    golden::<Float64BE>(1.0, b"?\xf0\x00\x00\x00\x00\x00\x00");
    golden::<Float64LE>(1.0, b"\x00\x00\x00\x00\x00\x00\xf0?");
}

#[test]
fn fixed_bytes() {
    // Python pads b'ab' to 61 62 00 00; here the value is already four bytes.
    golden::<FixedBytes<4>>(*b"ab\0\0", &hex("61 62 00 00"));
    golden::<FixedBytes<4>>(*b"abcd", b"abcd");
    golden::<FixedBytes<0>>([], b"");
    assert_eq!(
        FixedBytes::<4>::value_from_bytes(b"abc"),
        Err(DecodeError::Short { what: "BinaryFixedBytes", offset: 0, needed: 4, available: 3 })
    );
    assert_eq!(FixedBytes::<4>::value_from_bytes(b"abcde"), Err(DecodeError::Trailing { offset: 4, len: 1 }));
}

#[test]
fn nul_terminated_strings() {
    golden::<Utf8Nul>("ab".into(), &hex("61 62 00"));
    golden::<Utf8Nul>(String::new(), &hex("00"));
    golden::<Utf16LeNul>("ab".into(), &hex("61 00 62 00 00 00"));
    golden::<Utf16BeNul>("ab".into(), &hex("00 61 00 62 00 00"));
    golden::<Utf16LeNul>("abc".into(), b"a\x00b\x00c\x00\x00\x00");
    golden::<Utf16BeNul>("abc".into(), b"\x00a\x00b\x00c\x00\x00");
    golden::<Utf16LeNul>(String::new(), &hex("00 00"));
    // A missing NUL at the end of the input is accepted for UTF-8, as Python does,
    // even when nothing at all is left.
    assert_eq!(Utf8Nul::value_from_bytes(b"ab"), Ok("ab".to_string()));
    assert_eq!(Utf8Nul::value_from_bytes(b""), Ok(String::new()));
    // The NUL ends the field; what follows is the next field's.
    let mut input = Reader::new(b"ab\0cd");
    assert_eq!(Utf8Nul::decode_value(&mut input), Ok("ab".to_string()));
    assert_eq!(input.remaining(), b"cd");
    // UTF-16 needs its terminator, on a two-byte boundary.
    assert_eq!(
        Utf16LeNul::value_from_bytes(b"a\x00b\x00"),
        Err(DecodeError::MissingNul { what: "BinaryUTF16NUL", offset: 0 })
    );
    assert_eq!(
        Utf16LeNul::value_from_bytes(b"a\x00\x00"),
        Err(DecodeError::MissingNul { what: "BinaryUTF16NUL", offset: 0 })
    );
    // 00 61 00 00 in LE is U+6100 then the terminator, not a NUL at offset 1.
    assert_eq!(Utf16LeNul::value_from_bytes(&hex("00 61 00 00")), Ok("\u{6100}".to_string()));
}

// ---- Section 2: composition ----

#[test]
fn binary_multi_struct() {
    golden::<HbQ>(HbQ { a: 1, b: -1, c: 2 }, &hex("00 01 ff 00 00 00 00 00 00 00 02"));
    golden::<(UInt16BE, Int8, UInt64BE)>((1, -1, 2), &hex("00 01 ff 00 00 00 00 00 00 00 02"));
    golden::<ShortBs>(ShortBs { short: 0x8182, bs: *b"zyxw" }, &hex("81 82 7a 79 78 77"));
}

#[test]
fn binary_multi_value_example() {
    let bytes = hex("11 22 81 82 7a 79 78 77 02 68 69 03 30 2e 35 02 41 42");
    let value =
        Bmv { n1: 17, n2: 34, nd: ShortBs { short: 0x8182, bs: *b"zyxw" }, s: "hi".into(), f: 0.5, d: b"AB".to_vec() };
    assert_eq!(value.to_bytes(), Ok(bytes.clone()));
    assert_eq!(Bmv::decode_all(&bytes), Ok(value));
    golden::<Bmv>(Bmv::decode_all(&bytes).expect("decodes"), &bytes);

    let tuple = BmvTuple { n1: 17, n2: 34, nd: (0x8182, *b"zyxw"), s: "hi".into(), f: 0.5, d: b"AB".to_vec() };
    assert_eq!(tuple.to_bytes(), Ok(bytes.clone()));
    assert_eq!(BmvTuple::decode_all(&bytes), Ok(tuple));
}

#[test]
fn cs_binary_own_multi_value_doctest() {
    let bytes = b"\x11\x22\x77\x81\x82zyxw\x02AB\x04DEFG";
    let value = CsBinaryBmv {
        n1: 17,
        n2: 34,
        n3: 119,
        nd: ShortBs { short: 33154, bs: *b"zyxw" },
        data1: b"AB".to_vec(),
        data2: b"DEFG".to_vec(),
    };
    assert_eq!(CsBinaryBmv::decode_all(bytes), Ok(value.clone()));
    assert_eq!(value.to_bytes(), Ok(bytes.to_vec()));
    assert_eq!(value.nd.to_bytes(), Ok(b"\x81\x82zyxw".to_vec()));
}

#[test]
fn add_request_payloads() {
    // Section 3's payloads, which a typed-request layer will put in packets.
    let rq = AddRequest { hashenum: 1, data: b"hello".to_vec() };
    assert_eq!(rq.to_bytes(), Ok(hex("01 05 68 65 6c 6c 6f")));
    let rq = AddRequest { hashenum: 300, data: Vec::new() };
    assert_eq!(rq.to_bytes(), Ok(hex("82 2c 00")));
    assert_eq!(AddRequest::decode_all(&hex("82 2c 00")), Ok(rq));
    golden::<BSString>("got 5 bytes".into(), &hex("0b 67 6f 74 20 35 20 62 79 74 65 73"));
    golden::<BSString>("got 2 bytes".into(), b"\x0bgot 2 bytes");
}

#[test]
fn empty_structs_and_payloads() {
    assert_eq!(Empty {}.to_bytes(), Ok(Vec::new()));
    assert_eq!(Empty::decode_all(b""), Ok(Empty {}));
    assert_eq!(Unit.to_bytes(), Ok(Vec::new()));
    assert_eq!(Unit::decode_all(b""), Ok(Unit));
    assert_eq!(Unit::decode_all(b"x"), Err(DecodeError::Trailing { offset: 0, len: 1 }));
    assert_eq!(().to_bytes(), Ok(Vec::new()));
    assert_eq!(<()>::decode_all(b""), Ok(()));
    assert_eq!(<()>::decode_all(b"ab"), Err(DecodeError::Trailing { offset: 0, len: 2 }));
    golden::<()>((), b"");
}

#[test]
fn raw_payloads() {
    assert_eq!(b"raw \x00 bytes".to_vec().to_bytes(), Ok(b"raw \x00 bytes".to_vec()));
    assert_eq!(Vec::<u8>::decode_all(b""), Ok(Vec::new()));
    assert_eq!(Vec::<u8>::decode_all(b"\x00\xff"), Ok(vec![0, 0xff]));
    golden::<(UInt8, Rest)>((7, b"tail".to_vec()), b"\x07tail");
    golden::<(UInt8, Rest)>((7, Vec::new()), b"\x07");
}

#[test]
fn nesting_and_every_field_kind() {
    let value = everything();
    let bytes = value.to_bytes().expect("encodes");
    assert_eq!(Everything::decode_all(&bytes), Ok(value.clone()));
    // A nested struct is encoded in place, with nothing around it.
    let mut expected_tail = value.k.to_bytes().expect("encodes");
    expected_tail.extend(b"end\0");
    assert!(bytes.ends_with(&expected_tail));
    golden::<Everything>(value, &bytes);
}

// ---- Round trips at the boundaries ----

#[test]
fn bsuint_boundaries() {
    let mut values = vec![0, 127, 128, 1 << 63, u64::MAX, u64::MAX - 1];
    for shift in (7..64).step_by(7) {
        let v = 1u64 << shift;
        values.extend([v - 1, v, v + 1]);
    }
    for v in values {
        round_trip::<BSUInt>(v);
    }
}

#[test]
fn bsdata_sizes() {
    round_trip::<BSData>(Vec::new());
    let big: Vec<u8> = (0..8 << 20).map(|i: u32| (i.wrapping_mul(2654435761) >> 24) as u8).collect();
    let bytes = enc::<BSData>(&big);
    assert_eq!(&bytes[..4], &hex("84 80 80 00"));
    assert_eq!(bytes.len(), big.len() + 4);
    assert_eq!(BSData::value_from_bytes(&bytes), Ok(big));
}

#[test]
fn multi_byte_utf8() {
    for text in ["é", "€", "😀", "aé€😀z", "\u{7f}\u{80}\u{7ff}\u{800}\u{ffff}\u{10000}\u{10ffff}"] {
        round_trip::<BSString>(text.to_string());
        round_trip::<Utf8Nul>(text.to_string());
        round_trip::<Utf16LeNul>(text.to_string());
        round_trip::<Utf16BeNul>(text.to_string());
    }
    // The length counts bytes.
    assert_eq!(enc::<BSString>(&"😀".to_string()), hex("04 f0 9f 98 80"));
    // A character outside the BMP is a surrogate pair in UTF-16.
    assert_eq!(enc::<Utf16LeNul>(&"😀".to_string()), hex("3d d8 00 de 00 00"));
    assert_eq!(enc::<Utf16BeNul>(&"😀".to_string()), hex("d8 3d de 00 00 00"));
}

#[test]
fn every_float_of_the_document() {
    let values = [
        0.0,
        0.1,
        1.0,
        -2.0,
        -0.0,
        1e15,
        1e16,
        1e100,
        1e-4,
        1e-5,
        1.0 / 3.0,
        5e-324,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::MAX,
        f64::MIN,
        f64::MIN_POSITIVE,
        f64::from_bits(1),
        f64::from_bits(0x000f_ffff_ffff_ffff),
        f64::from_bits(0x0008_0000_0000_0000),
    ];
    for value in values {
        assert_eq!(BSSFloat::value_from_bytes(&enc::<BSSFloat>(&value)).map(f64::to_bits), Ok(value.to_bits()));
        assert_eq!(Float64BE::value_from_bytes(&enc::<Float64BE>(&value)).map(f64::to_bits), Ok(value.to_bits()));
        assert_eq!(Float64LE::value_from_bytes(&enc::<Float64LE>(&value)).map(f64::to_bits), Ok(value.to_bits()));
    }
    assert!(BSSFloat::value_from_bytes(&enc::<BSSFloat>(&f64::NAN)).expect("decodes").is_nan());
    // The fixed-width floats keep every bit, a NaN's payload too.
    let odd_nan = f64::from_bits(0x7ff4_0000_dead_beef);
    assert_eq!(Float64BE::value_from_bytes(&enc::<Float64BE>(&odd_nan)).map(f64::to_bits), Ok(odd_nan.to_bits()));
    assert_eq!(Float64LE::value_from_bytes(&enc::<Float64LE>(&odd_nan)).map(f64::to_bits), Ok(odd_nan.to_bits()));
}

#[test]
fn fixed_width_extremes() {
    golden::<UInt8>(0, &hex("00"));
    golden::<UInt8>(u8::MAX, &hex("ff"));
    golden::<Int8>(i8::MIN, &hex("80"));
    golden::<Int8>(i8::MAX, &hex("7f"));
    golden::<Int16BE>(i16::MIN, &hex("80 00"));
    golden::<Int16BE>(i16::MAX, &hex("7f ff"));
    golden::<Int16LE>(i16::MIN, &hex("00 80"));
    golden::<Int16LE>(i16::MAX, &hex("ff 7f"));
    golden::<UInt16BE>(0, &hex("00 00"));
    golden::<UInt16BE>(u16::MAX, &hex("ff ff"));
    golden::<UInt16LE>(0, &hex("00 00"));
    golden::<UInt16LE>(u16::MAX, &hex("ff ff"));
    golden::<Int32BE>(i32::MIN, &hex("80 00 00 00"));
    golden::<Int32BE>(i32::MAX, &hex("7f ff ff ff"));
    golden::<Int32LE>(i32::MIN, &hex("00 00 00 80"));
    golden::<Int32LE>(i32::MAX, &hex("ff ff ff 7f"));
    golden::<UInt32BE>(0, &hex("00 00 00 00"));
    golden::<UInt32BE>(u32::MAX, &hex("ff ff ff ff"));
    golden::<UInt32LE>(0, &hex("00 00 00 00"));
    golden::<UInt32LE>(u32::MAX, &hex("ff ff ff ff"));
    golden::<Int64BE>(i64::MIN, &hex("80 00 00 00 00 00 00 00"));
    golden::<Int64BE>(i64::MAX, &hex("7f ff ff ff ff ff ff ff"));
    golden::<Int64LE>(i64::MIN, &hex("00 00 00 00 00 00 00 80"));
    golden::<Int64LE>(i64::MAX, &hex("ff ff ff ff ff ff ff 7f"));
    golden::<UInt64BE>(0, &hex("00 00 00 00 00 00 00 00"));
    golden::<UInt64BE>(u64::MAX, &hex("ff ff ff ff ff ff ff ff"));
    golden::<UInt64LE>(0, &hex("00 00 00 00 00 00 00 00"));
    golden::<UInt64LE>(u64::MAX, &hex("ff ff ff ff ff ff ff ff"));
    golden::<Float64BE>(f64::MAX, &hex("7f ef ff ff ff ff ff ff"));
    golden::<Float64BE>(f64::MIN, &hex("ff ef ff ff ff ff ff ff"));
    golden::<Float64LE>(f64::MAX, &hex("ff ff ff ff ff ff ef 7f"));
    golden::<Float64LE>(f64::MIN, &hex("ff ff ff ff ff ff ef ff"));
}

// ---- Vectors from the real Python ----

#[test]
fn bsfloat_vectors_from_python() {
    let text = include_str!("data/bsfloat-vectors.txt");
    let mut count = 0;
    for line in text.lines().filter(|line| !line.starts_with('#')) {
        let (bits, repr) = line.split_once(' ').expect("bits and text");
        let value = f64::from_bits(u64::from_str_radix(bits, 16).expect("hex bits"));
        assert_eq!(float_repr(value), repr, "repr of {bits}");
        let mut wire = vec![repr.len() as u8];
        wire.extend(repr.as_bytes());
        assert_eq!(enc::<BSSFloat>(&value), wire, "BSSFloat of {bits}");
        let back = BSSFloat::value_from_bytes(&wire).expect("decodes");
        if value.is_nan() {
            assert!(back.is_nan(), "{repr}");
        } else {
            assert_eq!(back.to_bits(), value.to_bits(), "{repr}");
        }
        count += 1;
    }
    assert!(count >= 5000, "only {count} vectors");
}

#[test]
fn float_parse_vectors_from_python() {
    let text = include_str!("data/float-parse-vectors.txt");
    let mut count = 0;
    for line in text.lines().filter(|line| !line.starts_with('#')) {
        let mut columns = line.split('\t');
        let (input, expected, shown) = (columns.next(), columns.next(), columns.next());
        let input = input.expect("input column");
        let expected = expected.expect("result column");
        let shown = shown.expect("ascii column");
        let bytes: Vec<u8> =
            (0..input.len()).step_by(2).map(|i| u8::from_str_radix(&input[i..i + 2], 16).expect("hex")).collect();
        let input = String::from_utf8(bytes).expect("UTF-8 input");
        let got = parse_float(&input);
        match expected {
            "error" => assert_eq!(got, None, "float({shown}) raises, got {got:?}"),
            "nan" => assert!(got.is_some_and(f64::is_nan), "float({shown}) is nan, got {got:?}"),
            bits => {
                let bits = u64::from_str_radix(bits, 16).expect("hex bits");
                assert_eq!(got.map(f64::to_bits), Some(bits), "float({shown})");
            }
        }
        count += 1;
    }
    assert!(count > 1000, "only {count} vectors");
}

// ---- Errors ----

#[test]
fn short_input_messages() {
    let err = UInt32BE::value_from_bytes(b"ab").unwrap_err();
    assert_eq!(err, DecodeError::Short { what: "UInt32BE", offset: 0, needed: 4, available: 2 });
    assert_eq!(err.to_string(), "short input at offset 0: UInt32BE needs 4 bytes, 2 left");
    assert_eq!(err.offset(), 0);

    let err = BSData::value_from_bytes(&hex("05 68 65")).unwrap_err();
    assert_eq!(err, DecodeError::Short { what: "BSData", offset: 1, needed: 5, available: 2 });
    assert_eq!(err.to_string(), "short input at offset 1: BSData needs 5 bytes, 2 left");

    let err = BSData::value_from_bytes(&hex("81")).unwrap_err();
    assert_eq!(err, DecodeError::Short { what: "BSData length", offset: 0, needed: 2, available: 1 });

    let err = BSString::value_from_bytes(b"").unwrap_err();
    assert_eq!(err, DecodeError::Short { what: "BSString length", offset: 0, needed: 1, available: 0 });
    assert_eq!(err.to_string(), "short input at offset 0: BSString length needs 1 bytes, 0 left");

    let err = BSSFloat::value_from_bytes(b"\x030.").unwrap_err();
    assert_eq!(err, DecodeError::Short { what: "BSSFloat", offset: 1, needed: 3, available: 2 });
}

#[test]
fn a_huge_claimed_length_fails_at_once() {
    // BSData claiming 2^60 bytes with three behind it.
    let mut bytes = Vec::new();
    BSUInt::encode_value(&(1 << 60), &mut bytes).expect("encodes");
    bytes.extend(b"abc");
    // Refused from the claimed length alone: a buffer of it would not be
    // allocated (the test would abort), let alone filled.
    assert_eq!(
        BSData::value_from_bytes(&bytes),
        Err(DecodeError::Short { what: "BSData", offset: 9, needed: 1 << 60, available: 3 })
    );
    let mut bytes = enc::<BSUInt>(&u64::MAX);
    bytes.push(b'x');
    assert_eq!(
        BSString::value_from_bytes(&bytes),
        Err(DecodeError::Short { what: "BSString", offset: 10, needed: u64::MAX, available: 1 })
    );
}

#[test]
fn trailing_bytes_message() {
    let err = AddRequest::decode_all(&hex("01 05 68 65 6c 6c 6f 00 00")).unwrap_err();
    assert_eq!(err, DecodeError::Trailing { offset: 7, len: 2 });
    assert_eq!(err.to_string(), "unparsed data at offset 7 (2 bytes)");
    assert_eq!(BSUInt::value_from_bytes(&hex("01 02")), Err(DecodeError::Trailing { offset: 1, len: 1 }));
}

#[test]
fn overflow_message() {
    let err = BSUInt::value_from_bytes(&hex("82 80 80 80 80 80 80 80 80 00")).unwrap_err();
    assert_eq!(err.to_string(), "BSUInt at offset 0 does not fit in 64 bits");
    // A length prefix that overflows says whose length it is, and where.
    let err = <(UInt8, BSData)>::value_from_bytes(&hex("07 82 80 80 80 80 80 80 80 80 00")).unwrap_err();
    assert_eq!(err, DecodeError::UIntOverflow { what: "BSData length", offset: 1 });
    assert_eq!(err.to_string(), "BSData length at offset 1 does not fit in 64 bits");
}

#[test]
fn bad_utf8_messages() {
    // The offset is that of the first bad byte, in the whole input.
    let err = <(UInt8, BSString)>::value_from_bytes(&hex("07 04 61 62 c3 28")).unwrap_err();
    assert_eq!(err, DecodeError::Utf8 { what: "BSString", offset: 4 });
    assert_eq!(err.to_string(), "invalid UTF-8 in BSString at offset 4");
    // Surrogates, overlong forms and values past U+10FFFF are refused, as by Python.
    for bad in [&hex("03 ed a0 80")[..], &hex("02 c0 80"), &hex("04 f4 90 80 80"), &hex("02 e2 82")] {
        assert_eq!(BSString::value_from_bytes(bad), Err(DecodeError::Utf8 { what: "BSString", offset: 1 }));
    }
    assert_eq!(
        Utf8Nul::value_from_bytes(&hex("61 ff 00")),
        Err(DecodeError::Utf8 { what: "BinaryUTF8NUL", offset: 1 })
    );
    assert_eq!(BSSFloat::value_from_bytes(&hex("02 31 ff")), Err(DecodeError::Utf8 { what: "BSSFloat", offset: 2 }));
}

#[test]
fn bad_utf16_messages() {
    // A lone low surrogate after one good character.
    let err = Utf16LeNul::value_from_bytes(&hex("61 00 00 dc 00 00")).unwrap_err();
    assert_eq!(err, DecodeError::Utf16 { what: "BinaryUTF16NUL", offset: 2 });
    assert_eq!(err.to_string(), "invalid UTF-16 in BinaryUTF16NUL at offset 2");
    // A high surrogate with nothing after it.
    assert_eq!(
        Utf16BeNul::value_from_bytes(&hex("00 61 d8 3d 00 00")),
        Err(DecodeError::Utf16 { what: "BinaryUTF16NUL", offset: 2 })
    );
    let err = Utf16BeNul::value_from_bytes(&hex("00 61")).unwrap_err();
    assert_eq!(err.to_string(), "BinaryUTF16NUL at offset 0 has no terminating NUL");
}

#[test]
fn bad_float_messages() {
    let err = <(UInt8, BSSFloat)>::value_from_bytes(b"\x07\x040x10").unwrap_err();
    assert_eq!(err, DecodeError::BadFloat { offset: 1, text: "0x10".to_string() });
    assert_eq!(err.to_string(), "BSSFloat at offset 1: \"0x10\" is not a float");
    for text in ["1__0", "_1", "1_", "", " ", "nan(1)", "1e", "1.5.5", "infinit"] {
        let wire = BSString::value_to_bytes(&text.to_string()).expect("encodes");
        assert_eq!(BSSFloat::value_from_bytes(&wire), Err(DecodeError::BadFloat { offset: 0, text: text.into() }));
    }
}

#[test]
fn invalid_messages() {
    let err = DecodeError::Invalid { offset: 3, reason: "unsupported version 9".into() };
    assert_eq!(err.to_string(), "invalid value at offset 3: unsupported version 9");
    assert_eq!(err.offset(), 3);
    let err = EncodeError::Invalid { reason: "too many items".into() };
    assert_eq!(err.to_string(), "cannot encode value: too many items");
}

#[test]
fn nul_inside_a_nul_terminated_string_is_refused() {
    let err = Utf8Nul::value_to_bytes(&"ab\0c".to_string()).unwrap_err();
    assert_eq!(err, EncodeError::ContainsNul { what: "BinaryUTF8NUL", index: 2 });
    assert_eq!(err.to_string(), "BinaryUTF8NUL value contains a NUL at byte 2");
    assert_eq!(
        Utf16LeNul::value_to_bytes(&"é\0".to_string()),
        Err(EncodeError::ContainsNul { what: "BinaryUTF16NUL", index: 2 })
    );
    assert_eq!(
        Utf16BeNul::value_to_bytes(&"\0".to_string()),
        Err(EncodeError::ContainsNul { what: "BinaryUTF16NUL", index: 0 })
    );
    // A struct passes the error on.
    packetstream::binary_struct! {
        struct Named { id: UInt8, name: Utf8Nul }
    }
    let named = Named { id: 1, name: "x\0".into() };
    assert_eq!(named.to_bytes(), Err(EncodeError::ContainsNul { what: "BinaryUTF8NUL", index: 1 }));
    // BSString has a length, so a NUL inside it is fine.
    round_trip::<BSString>("a\0b".to_string());
}

#[test]
fn every_cut_of_a_struct_is_short() {
    let bytes = everything().to_bytes().expect("encodes");
    // The last field is a UTF-8 string whose NUL may be missing, and which may
    // be missing altogether, so cutting into it still decodes.
    let last_field = bytes.len() - b"end\0".len();
    for cut in 0..bytes.len() {
        let result = Everything::decode_all(&bytes[..cut]);
        if cut >= last_field {
            let value = result.expect("the last field may be cut short");
            assert_eq!(value.m, String::from_utf8_lossy(&bytes[last_field..cut]));
        } else {
            match result {
                Err(DecodeError::Short { offset, available, .. }) => {
                    assert!(offset <= cut && offset + available == cut, "cut {cut}: offset {offset}");
                }
                Err(DecodeError::MissingNul { offset, .. }) => assert!(offset <= cut, "cut {cut}"),
                other => panic!("cut {cut}: {other:?}"),
            }
        }
    }
    // A struct that ends in a fixed field is short at every cut.
    let bytes = Bmv::decode_all(&hex("11 22 81 82 7a 79 78 77 02 68 69 03 30 2e 35 02 41 42"))
        .expect("decodes")
        .to_bytes()
        .expect("encodes");
    for cut in 0..bytes.len() {
        assert!(matches!(Bmv::decode_all(&bytes[..cut]), Err(DecodeError::Short { .. })), "cut {cut}");
    }
}

#[test]
fn errors_in_nested_fields_point_into_the_whole_input() {
    let mut bytes = everything().to_bytes().expect("encodes");
    // The nested AddRequest (7 bytes) comes just before the final "end\0".
    // Make its data length claim more than is there.
    let k_start = bytes.len() - b"end\0".len() - 7;
    assert_eq!(bytes[k_start..k_start + 2], [0x01, 0x05]);
    bytes[k_start + 1] = 0x7f;
    assert_eq!(
        Everything::decode_all(&bytes),
        Err(DecodeError::Short {
            what: "BSData",
            offset: k_start + 2,
            needed: 0x7f,
            available: bytes.len() - k_start - 2
        })
    );
}

#[test]
fn garbage_never_panics() {
    // A small deterministic generator; the point is coverage of odd shapes,
    // not randomness.
    let mut state: u64 = 0x243f_6a88_85a3_08d3;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let good = everything().to_bytes().expect("encodes");
    for round in 0..3000 {
        let mut bytes = if round % 2 == 0 { good.clone() } else { (0..next() % 64).map(|_| next() as u8).collect() };
        for _ in 0..(next() % 4) {
            if !bytes.is_empty() {
                let i = (next() as usize) % bytes.len();
                bytes[i] = next() as u8;
            }
        }
        let _ = Everything::decode_all(&bytes);
        let _ = Bmv::decode_all(&bytes);
        let _ = <(BSSFloat, Utf16LeNul, Utf8Nul)>::value_from_bytes(&bytes);
    }
}

#[test]
fn reader_basics() {
    let mut input = Reader::new(b"abcdef");
    assert_eq!(input.len(), 6);
    assert_eq!(input.take_array::<2>("two"), Ok(*b"ab"));
    assert_eq!(input.take(0, "nothing"), Ok(&b""[..]));
    assert_eq!(input.finish(), Err(DecodeError::Trailing { offset: 2, len: 4 }));
    assert_eq!(input.take_rest(), b"cdef");
    assert!(input.is_empty());
    assert_eq!(input.offset(), 6);
    assert_eq!(input.finish(), Ok(()));
    assert_eq!(input.take(1, "more"), Err(DecodeError::Short { what: "more", offset: 6, needed: 1, available: 0 }));
}

#[test]
fn errors_are_std_errors() {
    fn is_error<E: std::error::Error + Clone + PartialEq + Send + Sync + 'static>() {}
    is_error::<DecodeError>();
    is_error::<EncodeError>();
}
