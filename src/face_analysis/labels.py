"""The label sets every model and data file of the project agrees on."""

GENDERS = ("male", "female")
RACES = ("white", "black", "asian", "indian", "others")
# the facts of each model family, in one place (the builders are in models/architectures.py)
INPUT_SIZES = {"facenet": 160, "normal": 72}  # pixels of the square RGB face each model takes
# facenet: fine-tuning epochs, after its head epochs; normal: the shipped recipe (about 113 min on 2 cores)
DEFAULT_EPOCHS = {"facenet": 2, "normal": 10}
DEFAULT_DISTILL_WEIGHT = 0.5  # normal with a teacher: the share of its probabilities in the targets
MODEL_TYPES = tuple(INPUT_SIZES)
# facenet: the FaceNet stages where fine-tuning can start (models.architectures.FACENET_SPLITS), earliest first
FACENET_STAGES = ("block35", "block17_6", "mixed_7a", "block8")
LEGACY_FACENET_STAGE = "block35"  # facenet models saved without "fine_tune_from" were fine-tuned from there
# how run executes a model: int8 (its quantized files; the default, benchmarks/precision_agreement.py: the
# float answers for about 99 % of faces, twice as fast) or its float32 export
PRECISIONS = ("int8", "float32")
DEFAULT_PRECISION = "int8"
MAX_AGE = 116  # oldest age in UTKFace; the age head predicts a distribution over 0..MAX_AGE
AGE_BUCKET_EDGES = (0, 3, 10, 20, 30, 40, 50, 60, 70)
AGE_BUCKETS = ("0-2", "3-9", "10-19", "20-29", "30-39", "40-49", "50-59", "60-69", "70+")


def age_bucket(age: float) -> str:
    """The age bucket ("0-2", "3-9", "10-19", ..., "70+") an age falls in."""
    index = sum(age >= edge for edge in AGE_BUCKET_EDGES) - 1
    return AGE_BUCKETS[max(index, 0)]

# FairFace-style labelled sets (a CSV `file,age,gender,race`): age groups are intervals of whole years, and
# the seven race groups map onto the five classes above
AGE_GROUP_INTERVALS = {"0-2": (0, 2), "3-9": (3, 9), "10-19": (10, 19), "20-29": (20, 29), "30-39": (30, 39),
                       "40-49": (40, 49), "50-59": (50, 59), "60-69": (60, 69), "more than 70": (70, MAX_AGE)}
# "3-9" and "10-19" as a spreadsheet saves them (dates): public copies of FairFace's CSV have them
AGE_GROUP_ALIASES = {"03-Sep": "3-9", "Oct-19": "10-19"}
GENDER_NAMES = {"male": 0, "female": 1}
RACE_GROUPS = {"White": "white", "Black": "black", "East Asian": "asian", "Southeast Asian": "asian",
               "Indian": "indian", "Latino_Hispanic": "others", "Middle Eastern": "others"}
