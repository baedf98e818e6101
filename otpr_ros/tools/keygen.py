"""otpr-keygen: a key that signs policy updates, in a file only its owner may read.

    otpr-keygen ~/.config/otpr/robot.key
    otpr-launch finetune --update-key ~/.config/otpr/robot.key     (the learner signs with it)
    otpr-launch serve --update-key ~/.config/otpr/robot.key        (the server takes only signed updates)

An existing key is kept (checked, not overwritten). The finetune launch makes one per run by
default (<output_dir>/update.key); this command is for a key shared by several runs or machines.
"""

import argparse
import sys

from otpr_ros.model.update_auth import create_key


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="otpr-keygen", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("path", help="the key file to make (mode 0600)")
    args = parser.parse_args(argv)
    try:
        path = create_key(args.path)
    except (OSError, ValueError) as error:
        print(f"otpr-keygen: {error}", file=sys.stderr)
        return 2
    print(f"otpr-keygen: {path} (give it to the learner and the policy servers as update_key)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
