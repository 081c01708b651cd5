"""Reading and adding columns of a map_batches batch: a dict of NumPy arrays or a pandas DataFrame.

Ray Data hands a callable either format (batch_format="numpy" or "pandas"); the callables here
read their input column(s) as Python lists, check every row, and return the same kind of batch
with one column added, row i of the output belonging to row i of the input.
"""

import numpy as np

from minidistil.pipelines import PipelineInputError

ID_COLUMN = "id"  # when a batch has it, errors name the row by its id as well as by its position


def column_names(batch):
    return list(batch.columns) if hasattr(batch, "columns") else list(batch)


def column(batch, name):
    """Column `name` of `batch` as a Python list (pandas' missing values become None)."""
    if name not in column_names(batch):
        raise PipelineInputError(f"the batch has no column {name!r}; its columns are {column_names(batch)}")
    values = batch[name]
    if hasattr(values, "isna"):  # pandas: NaN / pd.NA / None all mean a missing value
        return [None if missing else value for value, missing in zip(values.tolist(), values.isna().tolist())]
    return list(values)


def row_name(batch, row):
    """'row 3 of the batch (id 17)': the position, and the id when the batch carries one."""
    if ID_COLUMN in column_names(batch):
        ids = batch[ID_COLUMN]
        value = ids.iloc[row] if hasattr(ids, "iloc") else ids[row]
        return f"row {row} of the batch (id {value})"
    return f"row {row} of the batch"


def texts(batch, name):
    """The strings of column `name`; a missing, non-string or blank value is an error naming its row."""
    values = column(batch, name)
    for row, value in enumerate(values):
        if value is None:
            raise PipelineInputError(f"{row_name(batch, row)}: column {name!r} is missing (null)")
        if not isinstance(value, str):
            raise PipelineInputError(
                f"{row_name(batch, row)}: column {name!r} must be a string, got {type(value).__name__} {value!r}"
            )
        if not value.strip():
            raise PipelineInputError(f"{row_name(batch, row)}: column {name!r} is empty")
    return [str(value) for value in values]  # np.str_ -> str


def with_column(batch, name, values):
    """`batch` with column `name` set to `values` (an (n, ...) array or a list of n Python objects)."""
    if hasattr(batch, "columns"):  # pandas: one object per cell (a row vector, a dict, a list)
        batch = batch.copy(deep=False)
        batch[name] = list(values)
        return batch
    if not isinstance(values, np.ndarray):  # element by element: np.array(list of lists) would add axes
        cells = np.empty(len(values), dtype=object)
        for i, value in enumerate(values):
            cells[i] = value
        values = cells
    return {**batch, name: values}
