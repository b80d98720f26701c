#!/usr/bin/env python3
"""Build a model's engine, push it to a board over SSH, run it there and print the result.

    python3 deploy.py [--board NAME] [--model NAME] [--image PHOTO | --input IN.f32] [--runs N] [--warmup N]
                      [--threads N] [--output OUT.f32] [--json] [--trust-host-key]

The default board is the emulated Zuluko-class board (configs/boards/emulated.yaml), started when needed.
"""

import sys

from deploy.cli import main

if __name__ == "__main__":
    sys.exit(main())
