"""Square: one operator's demonstrations without regrasps, as a robomimic HDF5 file.

The shipped Square policy's failures (docs/experiments/2026-12-03-square-quaternion-sign.md) are at the
grasp: the fingers dither half closed, the nut is held off its handle and slips, or the hand
opens during the lift. The scripted expert opens the hand mid-lift only to regrasp (its hold
was lost), and 46 of the 277 kept demonstrations do that at least once, most of them from the
noisier operators (noise 0.3). This writes the demonstrations of the noise-0.1 operator whose
gripper never goes from closed to open (no regrasp) into one file, keeping each one's
train/valid split and the first file's ``env_args``.

Usage: python docs/experiments/scripts/2026-12-03-square-clean-demos.py --output data/square_clean.hdf5 \
           data/square_mixed.hdf5 data/square_mixed_b.hdf5 data/square_mixed_c.hdf5
"""

import argparse

import h5py
import numpy as np


def regrasps(actions: np.ndarray) -> int:
    """How often the gripper command goes from closing (> 0) to opening (< 0)."""
    grip = np.sign(actions[:, -1])
    return int(((grip[:-1] > 0) & (grip[1:] < 0)).sum())


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("inputs", nargs="+")
    parser.add_argument("--output", required=True)
    parser.add_argument("--noise", type=float, default=0.1, help="keep this operator's demonstrations")
    args = parser.parse_args()
    kept, seen, masks = 0, 0, {"train": [], "valid": []}
    with h5py.File(args.output, "w") as out:
        data = out.create_group("data")
        for path in args.inputs:
            with h5py.File(path, "r") as f:
                if "env_args" not in data.attrs:
                    data.attrs["env_args"] = f["data"].attrs["env_args"]
                split = {name.decode(): s for s in masks for name in f["mask"][s][:]}
                for name, demo in f["data"].items():
                    seen += 1
                    if float(demo.attrs["noise"]) != args.noise or regrasps(demo["actions"][:]):
                        continue
                    new = f"demo_{kept}"
                    f.copy(demo, data, name=new)
                    masks[split[name]].append(new)
                    kept += 1
        data.attrs["total"] = sum(data[d]["actions"].shape[0] for d in data)
        for s, names in masks.items():
            out.create_dataset(f"mask/{s}", data=np.array(names, dtype="S"))
    print(f"{args.output}: {kept} of {seen} demonstrations (noise {args.noise}, no regrasp); "
          f"train {len(masks['train'])}, valid {len(masks['valid'])}")


if __name__ == "__main__":
    main()
