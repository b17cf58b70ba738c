import math
import re

from hypothesis import given
from hypothesis import strategies as st

from clinishare_identity.domain.pins import ALPHABET, ENTROPY_BITS, LENGTH, format_pin, generate_pin, normalise_pin


def test_pin_has_at_least_40_bits_of_entropy():
    assert len(set(ALPHABET)) == 32 and LENGTH == 10
    assert ENTROPY_BITS == 50 >= 40


def test_generated_pins_use_the_crockford_alphabet_and_differ():
    pins = {generate_pin() for _ in range(2000)}
    assert len(pins) == 2000
    assert all(len(p) == 10 and set(p) <= set(ALPHABET) for p in pins)
    # every symbol turns up: the generator does not favour part of the alphabet
    assert set("".join(pins)) == set(ALPHABET)
    assert not set("ILOU") & set("".join(pins))


def test_format_groups_four_four_two():
    assert format_pin("7QK4M2XD9T") == "7QK4-M2XD-9T"
    assert re.fullmatch(r"[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{2}", format_pin(generate_pin()))


def test_normalise_accepts_what_people_type():
    assert normalise_pin("7qk4-m2xd-9t") == "7QK4M2XD9T"
    assert normalise_pin(" 7QK4 M2XD 9T ") == "7QK4M2XD9T"
    assert normalise_pin("o1il-0000-00") == "0111000000"  # Crockford confusables


def test_normalise_rejects_what_cannot_be_a_pin():
    for raw in ("", "7QK4-M2XD-9", "7QK4-M2XD-9TX", "7QK4-M2XD-9U", "7QK4_M2XD_9T", "7QK4-M2XD-9!"):
        assert normalise_pin(raw) is None, raw


@given(st.text(alphabet=ALPHABET, min_size=10, max_size=10))
def test_format_then_normalise_round_trips(pin):
    assert normalise_pin(format_pin(pin)) == pin
    assert normalise_pin(format_pin(pin).lower()) == pin


def test_entropy_constant_matches_alphabet():
    assert math.isclose(ENTROPY_BITS, LENGTH * math.log2(len(ALPHABET)))
