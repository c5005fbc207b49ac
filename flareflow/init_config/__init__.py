"""``flareflow init-config``: draft a commented config for a data file, a sample of it, or a data dictionary.

    flareflow init-config --data FILE --site-column COL --label COL [--date-column COL] [--id-column COL] --out DIR

It reads column names, kinds and category labels, nothing more: no patient's value is printed or
written, except the labels of binary and categorical columns and the hospitals' names.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from flareflow.init_config.columns import InferenceError, Label, is_dictionary, profile_data, profile_dictionary
from flareflow.init_config.draft import Draft, Options, draft_config
from flareflow.init_config.render import JOB_FILES, default_yaml, job_yaml

__all__ = ["Draft", "InferenceError", "Options", "add_arguments", "draft", "init_config", "run"]

log = logging.getLogger(__name__)


def draft(options: Options) -> Draft:
    """Return the drafted config for the input (a data file, a sample, or a data dictionary).

    :param options: what was asked for
    """
    if not options.data.is_file():
        raise InferenceError(f"no such file: {options.data}")
    if is_dictionary(options.data, options.delimiter):
        return draft_config(profile_dictionary(options.data, options.delimiter), options, from_dictionary=True)
    dates = [options.date_column] if options.date_column else []
    columns = profile_data(options.data, options.delimiter, options.max_categories, dates=dates,
                           labels_of=[options.site_column])
    return draft_config(columns, options)


def init_config(options: Options, out: Path, *, force: bool = False, check: bool = True) -> tuple[Draft, list[Path]]:
    """Write ``default.yaml`` and the per-job files into ``out``; return the draft and the files written.

    :param options: what was asked for
    :param out: the config folder to write (created if missing)
    :param force: replace config files already there
    :param check: load the written folder with the pipeline's config loader (a draft that fails is a bug)
    """
    result = draft(options)
    files = {"default.yaml": default_yaml(result, options.data.name),
             **{f"{job}.yaml": job_yaml(job) for job in JOB_FILES}}
    existing = [name for name in files if (out / name).exists()]
    if existing and not force:
        raise InferenceError(f"{out} already holds {existing}; choose another folder or pass --force")
    out.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (out / name).write_text(text)
    if check:
        from flareflow.config import ConfigError, load_pipeline_config

        try:
            load_pipeline_config(out)
        except ConfigError as err:
            raise InferenceError(f"the draft in {out} does not load (a bug of init-config): {err}") from err
    return result, [out / name for name in files]


def _label_value(text: str) -> Label:
    try:
        return int(text)
    except ValueError:
        return text


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add init-config's options to a parser.

    :param parser: the ``init-config`` sub-command's parser
    """
    parser.add_argument("--data", required=True, type=Path,
                        help="the data file, a sample of it, or a data dictionary (a CSV with the header "
                             "column,kind,values,positive)")
    parser.add_argument("--site-column", required=True, help="the column naming each record's hospital")
    parser.add_argument("--label", required=True, help="the column the model predicts")
    parser.add_argument("--date-column", help="the column dating each record (without it every run uses every record)")
    parser.add_argument("--id-column", help="the record id column")
    parser.add_argument("--out", required=True, type=Path, help="the config folder to write")
    parser.add_argument("--delimiter", default=",", help="the file's field separator (default ,)")
    parser.add_argument("--max-categories", type=int, default=12,
                        help="the most distinct values a categorical column may have (default 12)")
    rule = parser.add_mutually_exclusive_group()
    rule.add_argument("--positive-above", type=float, help="the label is positive above this value")
    rule.add_argument("--positive-values", nargs="+", type=_label_value, help="the label values that are positive")
    parser.add_argument("--name", help="names the MLflow experiment and model (default: from the file's name)")
    parser.add_argument("--file-name", help="each hospital's data file name (default: the input's name)")
    parser.add_argument("--force", action="store_true", help="replace config files already in --out")


def run(options: argparse.Namespace) -> int:
    """Run ``flareflow init-config`` with parsed options; return the exit code.

    :param options: the parsed command line
    """
    asked = Options(
        data=options.data, site_column=options.site_column, label=options.label, date_column=options.date_column,
        id_column=options.id_column, delimiter=options.delimiter, max_categories=options.max_categories,
        positive_above=options.positive_above, positive_values=tuple(options.positive_values or ()),
        name=options.name, file_name=options.file_name,
    )
    result, written = init_config(asked, options.out, force=options.force)
    features = result.data["features"]
    print(f"wrote {', '.join(str(path) for path in written)}")
    print(f"  sites: {', '.join(result.sites)}")
    print("  features: " + ", ".join(f"{len(features[kind])} {kind}" for kind in features))
    if result.left_out:
        print(f"  left out: {', '.join(name for name, _ in result.left_out)}")
    print("  read every comment in default.yaml before the first run")
    return 0
