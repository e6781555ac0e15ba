// boonb's icon: three agents wired to one orchestrator. `jp-icon3` fills follow the theme.
import { LabIcon } from "@jupyterlab/ui-components";

const svgstr = `<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24">
  <g class="jp-icon3" fill="#616161">
    <circle cx="12" cy="5" r="3"/>
    <circle cx="5" cy="19" r="3"/>
    <circle cx="12" cy="19" r="3"/>
    <circle cx="19" cy="19" r="3"/>
    <rect x="11" y="7" width="2" height="9"/>
    <path d="M11.3 7.6 12.7 9 6.4 16.9 5 15.5z"/>
    <path d="M12.7 7.6 11.3 9l6.3 7.9 1.4-1.4z"/>
  </g>
</svg>`;

export const boonbIcon = new LabIcon({ name: "boonb:logo", svgstr });
