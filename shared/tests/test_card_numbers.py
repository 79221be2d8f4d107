"""The one written form of a card number (hypothesis over what people type)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kaiku_shared.kernel.card_numbers import CardNumberFormatError, normalise_card_number

letters = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", min_size=3,
                  max_size=3)
digits = st.text(alphabet="0123456789", min_size=5, max_size=5)
separators = st.sampled_from(["", "-", " ", "  ", " - ", "\t"])


@given(letters, digits, separators)
def test_every_typed_form_of_a_number_is_the_same_card(prefix, number, separator):
    typed = f" {prefix}{separator}{number} "
    assert normalise_card_number(typed) == f"{prefix.upper()}-{number}"


@pytest.mark.parametrize("typed", ["", "KXA-1234", "KXA-123456", "KX-12345", "KXA-1234٣",
                                   "ÄXA-12345", "KXA-１２３４５", "123-KXAAA", "KXA_12345"])
def test_anything_else_is_refused_with_the_format(typed):
    with pytest.raises(CardNumberFormatError, match="three letters and five digits"):
        normalise_card_number(typed)
