// The panel's export target: a package alone, or also the pipeline for Kubeflow Pipelines or
// Airflow (`nbops export --target kfp|airflow`), chosen beside the Export button, and where
// the export's files went, each linked to open in JupyterLab. The server side is
// nbops.labserver.exporttarget (`POST /nbops/api/export` with `target`).

import { IExportResult, requestAPI } from './api';

export type ExportTarget = 'package' | 'kfp' | 'airflow';

interface ITargetSpec {
  value: ExportTarget;
  label: string;
  /** The Export button's tooltip for this target. */
  title: string;
  /** Said while the export runs. */
  busy: string;
}

export const EXPORT_TARGETS: ITargetSpec[] = [
  {
    value: 'package',
    label: 'Package',
    title: 'Export the tagged cells as a versioned pipeline package (nbops export)',
    busy: 'Writing the package…'
  },
  {
    value: 'kfp',
    label: 'Kubeflow Pipelines',
    title:
      'Export the package and its Kubeflow Pipelines pipeline, compiled to YAML (nbops export --target kfp)',
    busy: 'Running the package once with the default parameters, then compiling the Kubeflow pipeline…'
  },
  {
    value: 'airflow',
    label: 'Airflow',
    title: 'Export the package and its Airflow DAG file (nbops export --target airflow)',
    busy: 'Running the package once with the default parameters, then writing the Airflow DAG…'
  }
];

function spec(target: ExportTarget): ITargetSpec {
  return EXPORT_TARGETS.find(t => t.value === target) ?? EXPORT_TARGETS[0];
}

/** A file an export wrote, relative to the server root, and what it is for. */
export interface IExportFile {
  path: string;
  what: string;
}

/** What `POST export` says of the target's files (labserver/exporttarget.py). */
export interface ITargetExport extends IExportResult {
  target?: ExportTarget;
  label?: string;
  files?: IExportFile[];
  /** The file to open or hand on: the compiled kfp YAML, the Airflow DAG file. */
  main?: string | null;
  /** One line: what to do with it. */
  next?: string;
  /** Values the orchestrator pipeline does not pass on (no later step reads them). */
  target_warnings?: string[];
}

export function exportTo(path: string, target: ExportTarget): Promise<ITargetExport> {
  return requestAPI<ITargetExport>('export', {
    method: 'POST',
    body: JSON.stringify({ path, target })
  });
}

type Child = Node | string | null | undefined | false;

function el(tag: string, attrs: Record<string, string | undefined> = {}, ...children: Child[]): HTMLElement {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value !== undefined) {
      node.setAttribute(key, value);
    }
  }
  for (const child of children) {
    if (child !== null && child !== undefined && child !== false) {
      node.append(child);
    }
  }
  return node;
}

/** The target chosen per notebook (by path), `package` until the user picks another. */
export class ExportTargets {
  constructor(private readonly changed: () => void) {}

  get(path: string): ExportTarget {
    return this._chosen.get(path) ?? 'package';
  }

  /** The Export button's tooltip and its text while exporting, for the chosen target. */
  title(path: string): string {
    return spec(this.get(path)).title;
  }

  busy(path: string): string {
    return spec(this.get(path)).busy;
  }

  /** The choice: a labelled select beside the Export button. */
  picker(path: string, disabled: boolean): HTMLElement {
    const id = `nbops-export-target-${Math.random().toString(36).slice(2, 8)}`;
    const select = el('select', {
      id,
      class: 'jp-mod-styled nbops-export-target',
      title: 'What to export: the package alone, or also the pipeline for an orchestrator'
    }) as HTMLSelectElement;
    for (const t of EXPORT_TARGETS) {
      const option = el('option', { value: t.value }, t.label) as HTMLOptionElement;
      option.selected = t.value === this.get(path);
      select.append(option);
    }
    select.disabled = disabled;
    select.addEventListener('change', () => {
      this._chosen.set(path, select.value as ExportTarget);
      this.changed();
    });
    return el('span', { class: 'nbops-export-for' }, el('label', { for: id }, 'for'), select);
  }

  private _chosen = new Map<string, ExportTarget>();
}

/** A path that breaks only after a `/` when the panel is narrow, never inside a name. */
function pathNode(path: string, cls: string): HTMLElement {
  const node = el('code', { class: cls });
  path.split('/').forEach((part, i, parts) => {
    node.append(part + (i < parts.length - 1 ? '/' : ''));
    if (i < parts.length - 1) {
      node.append(document.createElement('wbr'));
    }
  });
  return node;
}

/** Text with its paths (words holding a `/`) as pathNode's. */
function withPaths(text: string): (Node | string)[] {
  return text
    .split(/(\S*\/\S*)/)
    .filter(Boolean)
    .map(part => (part.includes('/') && !/\s/.test(part) ? pathNode(part, 'nbops-export-path') : part));
}

/** Where the export's files went, each linked (`open`: open it in JupyterLab); the main
 * one first and marked; then what to do with it. Null for an answer without files. */
export function exportFiles(result: ITargetExport, open: (path: string) => void): HTMLElement | null {
  const files = result.files ?? [];
  if (!files.length && !result.next) {
    return null;
  }
  const list = el('ul', { class: 'nbops-export-files' });
  for (const file of files) {
    const main = file.path === result.main;
    // Named from the export folder (the box says where that is), the full path as the
    // link's title: in a narrow panel a name then fits on its line.
    const folder = `${result.folder}/`;
    const shown = file.path.startsWith(folder) ? file.path.slice(folder.length) : file.path;
    const link = el(
      'a',
      { class: 'nbops-export-file', href: '#', title: `Open ${file.path} in JupyterLab`, 'data-path': file.path },
      pathNode(shown, 'nbops-export-name')
    );
    link.addEventListener('click', (event: Event) => {
      event.preventDefault();
      open(file.path);
    });
    list.append(
      el(
        'li',
        { class: main ? 'nbops-export-main' : undefined },
        link,
        el('div', { class: 'nbops-hint nbops-export-what' }, file.what)
      )
    );
  }
  const warnings = result.target_warnings ?? [];
  return el(
    'div',
    { class: 'nbops-export-target-result', 'data-target': result.target ?? 'package' },
    el('div', { class: 'nbops-export-files-title' }, `${result.label ?? 'Package'}:`),
    list,
    result.next ? el('div', { class: 'nbops-export-next' }, ...withPaths(result.next)) : null,
    ...warnings.map(w => el('div', { class: 'nbops-hint nbops-export-warning' }, `Warning: ${w}`))
  );
}
