"""The shared encoder of the validation metrics against a hand-built pandas reference."""

import numpy as np
import pandas as pd
import pytest

from twinsim.errors import DataError
from twinsim.validate._encode import encode_tables


def test_encoding_uses_the_training_table_for_every_table():
    train = pd.DataFrame({"x": [1.0, 2.0, 3.0, np.nan], "g": pd.Categorical(["a", "b", "a", "a"]), "c": [5.0] * 4})
    other = pd.DataFrame({"x": [2.0, 5.0], "g": ["b", "z"], "c": [5.0, 6.0]})
    a, b = encode_tables(train, other)
    mean, sd = np.nanmean([1, 2, 3]), np.nanstd([1, 2, 3])  # training moments, ddof 0
    # x standardised (missing -> 0) and its missingness indicator; g one-hot over the training levels;
    # c constant in training: SD 1
    ref_a = np.column_stack([[(1 - mean) / sd, 0, (3 - mean) / sd, 0], [0, 0, 0, 1],
                             pd.get_dummies(train["g"]).to_numpy(float), np.zeros(4)])
    ref_b = np.column_stack([[(2 - mean) / sd, (5 - mean) / sd], [0, 0], [[0, 1], [0, 0]], [0.0, 1.0]])
    np.testing.assert_allclose(a, ref_a)
    np.testing.assert_allclose(b, ref_b)  # the unseen level 'z' is all zeros
    with pytest.raises(DataError, match="lacks the column"):
        encode_tables(train, other.drop(columns="g"))
