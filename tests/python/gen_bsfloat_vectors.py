#!/usr/bin/env python3
"""Writes the BSSFloat test vectors for tests/binary.rs from the real cs.binary.

    python gen_bsfloat_vectors.py OUT_DIR

with the Python that has cs.binary 20240630 installed. Writes two files:

bsfloat-vectors.txt
    One float a line: the f64 bits in hex, a space, and the text Python's
    BSSFloat sends for it (str(float), checked against
    BSSFloat.transcribe_value). Lines starting with '#' name the group.

float-parse-vectors.txt
    One input to Python's float() a line, tab-separated: the input's UTF-8
    bytes in hex (empty for the empty string), then the f64 bits in hex, or
    "nan", or "error" where float() raises ValueError, then ascii(input)
    for the reader.

The random choices are seeded, so the output only changes with Python.
"""

import math
import random
import struct
import sys
import unicodedata

from cs.binary import BSSFloat, BSString


def bits(x):
    return struct.unpack('>Q', struct.pack('>d', x))[0]


def from_bits(b):
    return struct.unpack('>d', struct.pack('>Q', b))[0]


def neighbours(x, count):
    """x and the `count` floats either side of it."""
    out = [x]
    up = down = x
    for _ in range(count):
        up = math.nextafter(up, math.inf)
        down = math.nextafter(down, -math.inf)
        out += [up, down]
    return out


def float_groups(rng):
    groups = []
    groups.append(('special values', [
        0.0, -0.0, 0.1, 1.0, -2.0, 1e15, 1e16, 1e100, 1e-4, 1e-5, 1 / 3,
        5e-324, -5e-324, math.inf, -math.inf, math.nan,
        sys.float_info.max, -sys.float_info.max, sys.float_info.min,
        from_bits(0x000fffffffffffff), from_bits(0x0000000000000002),
        from_bits(0x0008000000000000), 0.5, 1.5, 2.5, 123.456, 1e22, 1e23,
        9007199254740993.0, 0.3, 2 / 3, 100.0, 1e-7, 1.5e-5,
    ]))
    groups.append(('random bit patterns, every exponent', [
        from_bits((rng.getrandbits(1) << 63) | (rng.randrange(2048) << 52) | rng.getrandbits(52))
        for _ in range(2000)
    ]))
    groups.append(('random subnormals', [from_bits(rng.getrandbits(52)) for _ in range(200)]))
    groups.append(('random 64-bit patterns', [from_bits(rng.getrandbits(64)) for _ in range(300)]))
    decimals = []
    for _ in range(1000):
        digits = ''.join(rng.choice('0123456789') for _ in range(rng.randint(1, 17)))
        decimals.append(float(f'{digits}e{rng.randint(-330, 310)}'))
    groups.append(('random decimals', decimals))
    groups.append(('powers of ten 1e-330 to 1e310', [float(f'1e{k}') for k in range(-330, 311)]))
    powers = []
    for k in range(-325, 309):
        x = float(f'1e{k}')
        if x != 0.0 and not math.isinf(x):
            powers += neighbours(x, 1)[1:]
    groups.append(('the floats either side of each power of ten', powers))
    switch = neighbours(1e-4, 60) + neighbours(1e-5, 60) + neighbours(1e16, 60) + neighbours(1e15, 20)
    switch += [rng.uniform(1e-5, 1e-4) for _ in range(300)]
    switch += [rng.uniform(9.999e15, 1.0001e16) for _ in range(300)]
    switch += [9.999e15, 9999999999999998.0, 1.0000000000000002e16, 0.0001000000000000001, 9.99999999999999e-5]
    groups.append(('near the fixed/exponent switch points', switch))
    integers = [float(n) for n in range(0, 300)]
    integers += [float(rng.randrange(2 ** 53)) for _ in range(300)]
    integers += [float(2 ** 53 + d) for d in range(-20, 21)]
    integers += [float(rng.randrange(2 ** 53, 2 ** 80)) for _ in range(300)]
    integers += [float(2 ** k) for k in range(0, 1024)]
    integers += [-float(rng.randrange(2 ** 60)) for _ in range(100)]
    groups.append(('integers up to 2^53 and beyond', integers))
    return groups


def odd_parse_inputs(rng):
    inputs = [
        '', ' ', '  ', '1', ' 1 ', '+1', '-1', '1.', '.5', '+.5', '-.5', '.', '-.', '1e5', '1E5',
        '1e+5', '1e-5', '1.e5', '.5e1', 'e5', '1e', '1e+', '1e-', '+', '-', '++1', '+-1', '1+',
        '1_0', '1__0', '_1', '1_', '1_.0', '1._0', '1.0_1', '1e1_0', '1_e1', '1e_1', ' 1_0 ',
        '1_ ', ' _1', '0_0', '1_000.000_1e1_0', '1e+0_5', '00012', '-0', '  -0  ', '+0e-0',
        'inf', 'INF', 'Inf', '+inf', '-inf', 'infinity', 'INFINITY', 'iNfInItY', '-Infinity',
        'infinit', 'infinityy', 'in_f', 'i nf', 'nan', 'NaN', 'NAN', '-nan', '+nan', 'nan(1)',
        'nanq', 'snan', '0x10', '0X1p3', '0b1', '0o7', '1 2', '1\x00', '\x001', '1,5', '1e1.5',
        '1.5.5', '--1', '1e999999', '1e-999999', '1e9999999999999999999', '0.' + '0' * 400 + '1',
        '1' * 400, '2.4703282292062327e-324', '2.4703282292062328e-324', '1.7976931348623157e308',
        '1.7976931348623158e308', '1.7976931348623159e308', '9007199254740993', '0.1e-0',
        '\t\n\r 1 \t\n\r', '\x0b1\x0b', '\x0c1', '\u00b2', '\u066b', '1\u200b', '\ufeff1',
        '\u0661\u0662', '\u0661_\u0662', '\uff11.\uff15', '\u0661e\u0661', '\u0661.\u0665e-\u0662',
    ]
    for code in list(range(0, 0x21)) + [0x7f]:
        inputs += [chr(code) + '1', '1' + chr(code)]
    for code in range(128, 0x110000):
        c = chr(code)
        if c.isspace():
            inputs += [c + '1' + c, '1' + c + '2']
    for code in range(128, 0x110000):
        if unicodedata.decimal(chr(code), None) == 0:
            run = [chr(code + d) for d in range(10)]
            inputs += [''.join(reversed(run)), run[1] + '.' + run[5], run[1] + '_' + run[2], run[3] + 'e' + run[2]]
            inputs.append(chr(code + 10))  # just past the run
    alphabet = '0123456789_.eE+-infINFatyAN \t'
    for _ in range(3000):
        inputs.append(''.join(rng.choice(alphabet) for _ in range(rng.randint(1, 8))))
    seen = set()
    return [s for s in inputs if not (s in seen or seen.add(s))]


def main(out_dir):
    rng = random.Random(20240630)
    with open(f'{out_dir}/bsfloat-vectors.txt', 'w') as f:
        f.write('# f64 bits and str(float), from Python %s via cs.binary BSSFloat\n' % sys.version.split()[0])
        seen = set()
        count = 0
        for title, values in float_groups(rng):
            f.write(f'# {title}\n')
            for x in values:
                b = bits(x)
                if b in seen:
                    continue
                seen.add(b)
                text = str(x)
                assert bytes(BSSFloat(x)) == BSString.transcribe_value(text)
                if not math.isnan(x):
                    assert bits(float(text)) == b
                f.write(f'{b:016x} {text}\n')
                count += 1
        print(f'{count} floats', file=sys.stderr)
    with open(f'{out_dir}/float-parse-vectors.txt', 'w') as f:
        f.write('# input UTF-8 hex, tab, float(input) as f64 bits or nan or error, tab, ascii(input); Python %s\n'
                % sys.version.split()[0])
        inputs = odd_parse_inputs(rng)
        for s in inputs:
            try:
                x = float(s)
            except ValueError:
                result = 'error'
            else:
                result = 'nan' if math.isnan(x) else f'{bits(x):016x}'
            f.write(f'{s.encode("utf-8").hex()}\t{result}\t{ascii(s)}\n')
        print(f'{len(inputs)} parse inputs', file=sys.stderr)


if __name__ == '__main__':
    main(sys.argv[1] if len(sys.argv) > 1 else '.')
