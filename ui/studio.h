#pragma once
// The editor's controllers in one include: the StudioController and the controller of each concern
// it owns (for windows, tabs and tests that use several of them).
#include "ui/attribute_controller.h"
#include "ui/morph_controller.h"
#include "ui/photo_intake.h"
#include "ui/project_io.h"
#include "ui/render_scheduler.h"
#include "ui/result_exporter.h"
#include "ui/studio_controller.h"
