"""The maintainer's and the instructor's tools, apart from what the notebooks import.

- ``timetable``, ``plan``  the instructor's 3-hour timetable (the page, and its arithmetic)
- ``class_copy``           a class's quantized models, shared once, checked from a learner's runtime
- ``rehearse``             every notebook of a profile with random weights (shrunk, or under a T4's limits)
- ``gpu_check``, ``gpu_report``, ``gpu_suite``   the kit's reference figures on a GPU, and their reports
- ``build_offline_models`` the offline models' reproducible build (``make models``)

Run each as ``python -m utils.tools.<name>``.
"""
