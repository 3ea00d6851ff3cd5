"""`make smoke ENV=<env>`: the launch checklist walked against a running CSCX, step by step, with a
table of each step's result and time (issue 16 point 7).

    python -m scripts.smoke dev|staging|prod        a deployment, from terraform's outputs
    python -m scripts.smoke local [--port-offset N] the local stack (`make run`; `make test` runs it on its own)

`target.py` says where CSCX is and signs people up; `checklist.py` is the checklist; `stream.py`
reads a chat's stream as a browser would.
"""
