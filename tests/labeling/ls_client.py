"""A small Label Studio client the labeling-loop tests run with the Label Studio venv's Python
(`.venv-labelstudio/bin/python`), because label-studio-sdk's pins clash with ours.

Usage: ``python ls_client.py URL TOKEN ACTION`` with the action's arguments as JSON on stdin; the
answer is JSON on stdout.

- ``setup {"config", "tasks", "images"}``: create a project with the labelling config (text),
  add a Local Files storage for the images folder, import the tasks (a tasks.json path);
  answers ``{"project", "tasks": {sample_id: task_id}}``.
- ``tasks {"project"}``: every task as the API returns it (data, predictions, annotations).
- ``image {"url"}``: fetch an image URL of a task through the server; answers its size in bytes.
- ``annotate {"project", "choices": {task_id: class}, "from_name"}``: submit one annotation per
  task, as a reviewer clicking the class and Submit.
- ``export {"project", "out", "type"}``: the project's export through the API (``type`` JSON, the
  default, or JSON_MIN), written to ``out``.
"""

from __future__ import annotations

import json
import sys


def main() -> None:
    url, token, action = sys.argv[1:4]
    args = json.load(sys.stdin)
    from label_studio_sdk import LabelStudio

    client = LabelStudio(base_url=url, api_key=token)
    if action == "setup":
        project = client.projects.create(title="review", label_config=args["config"])
        client.import_storage.local.create(project=project.id, path=args["images"], title="images",
                                           use_blob_urls=False)
        with open(args["tasks"], encoding="utf-8") as fh:
            tasks = json.load(fh)
        client.projects.import_tasks(project.id, request=tasks, return_task_ids=True)
        ids = {t.data["sample_id"]: t.id for t in client.tasks.list(project=project.id, page_size=100000)}
        answer: object = {"project": project.id, "tasks": ids}
    elif action == "tasks":  # the data manager's task list: the columns a reviewer sees
        import httpx

        response = httpx.get(f"{url.rstrip('/')}/api/tasks", params={"project": args["project"], "page_size": 100000,
                                                                    "fields": "all"},
                             headers={"Authorization": f"Token {token}"}, timeout=120)
        response.raise_for_status()
        answer = response.json()["tasks"]
    elif action == "image":
        import httpx

        response = httpx.get(url.rstrip("/") + args["url"], headers={"Authorization": f"Token {token}"})
        response.raise_for_status()
        answer = {"bytes": len(response.content), "type": response.headers.get("content-type")}
    elif action == "annotate":  # (several reviewers at once: the requests overlap)
        from concurrent.futures import ThreadPoolExecutor

        def submit(item: tuple[str, str]) -> None:
            task_id, choice = item
            client.annotations.create(int(task_id), result=[{
                "from_name": args["from_name"], "to_name": "image", "type": "choices",
                "value": {"choices": [choice]}}], was_cancelled=False, ground_truth=False)

        with ThreadPoolExecutor(max_workers=4) as pool:
            list(pool.map(submit, sorted(args["choices"].items())))
        answer = {"annotated": len(args["choices"])}
    elif action == "export":
        with open(args["out"], "wb") as fh:
            for chunk in client.projects.exports.download_sync(args["project"], export_type=args.get("type", "JSON"),
                                                               download_all_tasks=True):
                fh.write(chunk)
        answer = {"out": args["out"]}
    else:
        raise SystemExit(f"unknown action {action!r}")
    json.dump(answer, sys.stdout, default=str)


if __name__ == "__main__":
    main()
