// nbops JupyterLab extension: tag cells with pipeline roles, see and run the pipeline.

import {
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ICommandPalette } from '@jupyterlab/apputils';
import { INotebookTracker } from '@jupyterlab/notebook';

import { CommandIDs, PALETTE_CATEGORY, addTaggingCommands } from './commands';
import { activateBadgeMenu } from './badgemenu';
import { activateRoleDisplay } from './display';
import { mirrorShortcutsInPalette, paletteLabel } from './palette';
import { PipelinePanel, pipelineIcon } from './panel';

export { VOCABULARY } from './vocabulary';

const PLUGIN_ID = 'nbops-jupyterlab:plugin';

const plugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN_ID,
  description: 'Tag notebook cells with nbops pipeline roles; the pipeline panel (export, run, bundle).',
  autoStart: true,
  requires: [INotebookTracker],
  optional: [ICommandPalette, ILayoutRestorer],
  activate: (
    app: JupyterFrontEnd,
    tracker: INotebookTracker,
    palette: ICommandPalette | null,
    restorer: ILayoutRestorer | null
  ) => {
    activateRoleDisplay(tracker);

    const panel = new PipelinePanel(app, tracker);
    app.shell.add(panel, 'right', { rank: 650 });
    if (restorer) {
      restorer.add(panel, 'nbops-pipeline-panel');
    }

    app.commands.addCommand(CommandIDs.openPanel, {
      label: args => (args.isPalette ? paletteLabel('Open the pipeline panel') : 'Pipeline panel'),
      caption: 'Show the nbops pipeline of this notebook: steps, parameters, problems; export and run',
      icon: args => (args.toolbar ? pipelineIcon : undefined),
      execute: () => {
        app.shell.activateById(panel.id);
        void panel.refresh();
      }
    });
    app.commands.addCommand(CommandIDs.refreshPanel, {
      label: args =>
        args.isPalette ? paletteLabel('Refresh the pipeline panel') : 'Refresh the pipeline panel',
      execute: () => panel.refresh()
    });

    addTaggingCommands(app, tracker, palette);
    activateBadgeMenu(app, tracker);
    if (palette) {
      palette.addItem({
        command: CommandIDs.openPanel,
        category: PALETTE_CATEGORY,
        args: { isPalette: true },
        rank: 20
      });
      palette.addItem({
        command: CommandIDs.refreshPanel,
        category: PALETTE_CATEGORY,
        args: { isPalette: true },
        rank: 21
      });
      mirrorShortcutsInPalette(app.commands);
    }
  }
};

export default plugin;
