/* panels.h: what view.c needs from panels.c beyond view.h (the panels'
 * own key handlers and the command line's cursor); not for other modules. */
#ifndef VZ_PANELS_H
#define VZ_PANELS_H

#include "view.h"

/* The key handler of panel id (0 when it has none or the key is not its). */
int vz_panel_key(vz_panel_id id, vz_view *v, int key, const vz_data *d);
/* The column of the command line's cursor when drawn into r. */
int vz_cmd_cursor(vz_rect r, const vz_chrome *ch);

#endif
