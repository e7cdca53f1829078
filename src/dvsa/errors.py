"""The errors a user sees: one line that names the input and the fix."""


class DvsaError(Exception):
    """Base class: a problem with the user's input, params or environment, shown as one line."""


class InputError(DvsaError):
    """A data file (dataset json, image, HDF5, checkpoint) is missing or malformed."""


class ParamsError(DvsaError):
    """A key in params.yaml is unknown, has the wrong type or a bad value."""


class WeightsError(DvsaError):
    """Pretrained weights are missing or do not fit the network."""


class TrainingError(DvsaError):
    """Training cannot go on (e.g. the loss exploded or became NaN)."""
