/** The Linux tray (`cowork-vm tray`): the menu model as a StatusNotifierItem with a dbusmenu menu. */
export { DBUSMENU_IFACE, DbusMenu, layoutOf, MENU_PATH, MenuIds, menuLabel, menuTree } from './dbusmenu.js';
export { ControllerFollower, type FollowOptions } from './follow.js';
export { SNI_IFACE, SNI_PATH, SNI_STATUS, StatusItem } from './status-item.js';
export { type RunningTray, startTray, type TrayOptions, WATCHER } from './tray.js';
